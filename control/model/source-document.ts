// One Kubernetes object as read from a file, and how to point into it: what validation needs
// to say "file:line: resource: field X: what is wrong" without knowing how the file was
// read (control/source/ reads YAML into these; validators and the store only consume them).

/** A path into a document: `['spec', 'ports', 0, 'port']`. */
export type FieldPath = readonly (string | number)[];

/** One Kubernetes object read from a file. */
export interface SourceDocument {
  file: string;
  /** 0-based position among the file's documents (empty documents included) */
  index: number;
  /** 1-based line where the document's content starts */
  line: number;
  apiVersion: string;
  kind: string;
  name: string;
  /** metadata.namespace as written (undefined when absent) */
  namespace: string | undefined;
  /** the size of the document's own text in the file (its YAML, in bytes), when read from one */
  bytes?: number;
  /** the whole document as plain JS values */
  object: Record<string, unknown>;
  /** 1-based line of the node at `field` in this document, if it exists */
  lineOf(field: FieldPath): number | undefined;
}

/** `['spec', 'ports', 0, 'port']` → `spec.ports[0].port`; odd keys are quoted: `labels["a/b"]`. */
export function formatFieldPath(path: FieldPath): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) s += s ? `.${seg}` : seg;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s;
}
