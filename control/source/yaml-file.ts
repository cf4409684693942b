// One file's text → its Kubernetes objects (SourceDocument), within the limits of
// model/limits.ts.
//
// - A file that is not valid YAML yields NM_ERR_CONFIG_YAML with its line; the whole file
//   fails (the caller keeps the documents last read from it).
// - A file with more documents than `documentsPerFile` fails as a whole with
//   NM_ERR_CONFIG_LIMIT: nothing of it is applied, rather than its first N documents.
// - A document that is not a Kubernetes object (a mapping with apiVersion, kind and
//   metadata.name) is reported on its own; the other documents of the file still apply.
//
// Documents are composed one at a time (yaml's Parser and Composer, which parseAllDocuments
// wraps), so that the count is refused as soon as it is passed, and each document's syntax
// tree is dropped once its plain value is taken: the tree costs ~8× the value in memory and
// is only needed to say on which line a field is, which only an error asks. `lineOf`
// re-reads the document's own text then (once, cached).
//
// The async form gives the event loop back every few milliseconds: parsing YAML is CPU work
// (~0.3 ms per small document here), and a control plane that stops answering its readiness
// probe and its agents' keepalive pings while it reads a large file is down.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Composer, LineCounter, Parser, isMap, isSeq, parseDocument, type Document } from 'yaml';
import { ConfigError } from '../../common/errors.js';
import { DEFAULT_CONFIG_LIMITS, LIMIT_FLAGS, type ConfigLimits } from '../model/limits.js';
import type { FieldPath, SourceDocument } from '../model/source-document.js';

export interface ParsedFile {
  documents: SourceDocument[];
  documentErrors: ConfigError[];
}

export type ParseResult = ParsedFile | { error: ConfigError };

/** Parses one file's text; a YAML error anywhere in the file fails the whole file. */
export function parseYamlFile(file: string, text: string, limits: Pick<ConfigLimits, 'documentsPerFile'> = DEFAULT_CONFIG_LIMITS): ParseResult {
  const steps = parseSteps(file, text, limits);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

/** As parseYamlFile, yielding to the event loop whenever it has worked for `sliceMs` (default 10 ms). */
export async function parseYamlFileAsync(
  file: string,
  text: string,
  limits: Pick<ConfigLimits, 'documentsPerFile'> = DEFAULT_CONFIG_LIMITS,
  sliceMs = 10,
): Promise<ParseResult> {
  const steps = parseSteps(file, text, limits);
  let since = performance.now();
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
    if (performance.now() - since >= sliceMs) {
      await yieldToLoop();
      since = performance.now();
    }
  }
}

/** The parse, one document per step. */
function* parseSteps(file: string, text: string, limits: Pick<ConfigLimits, 'documentsPerFile'>): Generator<void, ParseResult, void> {
  const lineCounter = new LineCounter();
  const parser = new Parser(lineCounter.addNewLine);
  const composer = new Composer({ prettyErrors: false });
  const out: ParsedFile = { documents: [], documentErrors: [] };
  let index = 0;
  try {
    for (const doc of composer.compose(parser.parse(text)) as Iterable<Document.Parsed>) {
      if (index >= limits.documentsPerFile) {
        return {
          error: new ConfigError(
            'NM_ERR_CONFIG_LIMIT',
            { file, line: lineCounter.linePos(doc.contents?.range?.[0] ?? doc.range[0]).line },
            `more than ${limits.documentsPerFile} documents in one file (the limit, ${LIMIT_FLAGS.documentsPerFile}); nothing of this file is applied: split it into several files`,
          ),
        };
      }
      const bad = doc.errors[0];
      if (bad) {
        const line = bad.linePos?.[0].line ?? lineCounter.linePos(bad.pos[0]).line;
        const reason = bad.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return {
          error: new ConfigError('NM_ERR_CONFIG_YAML', { file, line }, `not valid YAML: ${reason}; fix the file (its last good resources stay in force meanwhile)`),
        };
      }
      readDocument(file, text, doc, index++, lineCounter, out);
      yield;
    }
  } catch (err) {
    // the parser's own limits (a stack overflow on absurd nesting) land here too
    return { error: new ConfigError('NM_ERR_CONFIG_YAML', { file }, `not valid YAML: ${(err as Error).message}`) };
  }
  return out;
}

function readDocument(file: string, text: string, doc: Document.Parsed, index: number, lc: LineCounter, out: ParsedFile): void {
  const contents = doc.contents;
  if (contents === null) return; // comments only, or a bare `---`
  const line = contents.range ? lc.linePos(contents.range[0]).line : 1;
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    out.documentErrors.push(new ConfigError('NM_ERR_CONFIG_YAML', { file, line }, `not valid YAML: ${(err as Error).message}`));
    return;
  }
  if (value === null || value === undefined) return; // `~` alone
  const [start, , end] = doc.range;
  const source = text.slice(start, end);
  const header = objectHeader(file, line, value, doc, lazyLineOf(source, lc.linePos(start).line));
  if (header instanceof ConfigError) out.documentErrors.push(header);
  else out.documents.push({ ...header, index, bytes: Buffer.byteLength(source) });
}

/**
 * `lineOf` for a document whose syntax tree is gone: its own text parsed again on the first
 * call (anchors and aliases never cross documents), lines counted from where it starts.
 */
function lazyLineOf(source: string, firstLine: number): (field: FieldPath) => number | undefined {
  let tree: { doc: Document.Parsed; lc: LineCounter } | null | undefined;
  return (field) => {
    if (tree === undefined) {
      const lc = new LineCounter();
      try {
        tree = { doc: parseDocument(source, { lineCounter: lc, prettyErrors: false }) as Document.Parsed, lc };
      } catch {
        tree = null;
      }
    }
    if (!tree) return undefined;
    const node = tree.doc.getIn(field as (string | number)[], true) as { range?: [number, number, number] } | undefined;
    return node?.range ? firstLine + tree.lc.linePos(node.range[0]).line - 1 : undefined;
  };
}

function objectHeader(
  file: string,
  line: number,
  value: unknown,
  doc: Document.Parsed,
  lineOf: (field: FieldPath) => number | undefined,
): Omit<SourceDocument, 'index' | 'bytes'> | ConfigError {
  const expected = 'expected a Kubernetes object: a mapping with apiVersion, kind and metadata.name';
  if (typeof value !== 'object' || Array.isArray(value) || !isMap(doc.contents)) {
    const found = isSeq(doc.contents) ? 'a list' : `a ${typeof value}`;
    return new ConfigError('NM_ERR_CONFIG_FIELD', { file, line }, `${expected}, found ${found}`);
  }
  const object = value as Record<string, unknown>;
  const missing = (field: string, what: string) =>
    new ConfigError('NM_ERR_CONFIG_FIELD', { file, line: lineOf(field.split('.')) ?? line, field }, `${expected}; ${what}`);
  const { apiVersion, kind, metadata } = object;
  if (typeof apiVersion !== 'string' || apiVersion === '')
    return missing('apiVersion', apiVersion === undefined ? 'apiVersion is missing' : 'apiVersion must be a non-empty string such as "v1"');
  if (typeof kind !== 'string' || kind === '')
    return missing('kind', kind === undefined ? 'kind is missing' : 'kind must be a non-empty string such as "Service"');
  const where = (name?: string) => (name ? `${kind} ${name}` : kind);
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
    return new ConfigError('NM_ERR_CONFIG_FIELD', { file, line, resource: where(), field: 'metadata' }, `${expected}; metadata must be a mapping with a name`);
  const m = metadata as Record<string, unknown>;
  if (typeof m.name !== 'string' || m.name === '')
    return new ConfigError(
      'NM_ERR_CONFIG_FIELD',
      { file, line: lineOf(['metadata', 'name']) ?? line, resource: where(), field: 'metadata.name' },
      m.name === undefined ? 'metadata.name is missing (generateName is not supported)' : 'metadata.name must be a non-empty string',
    );
  if (m.namespace !== undefined && (typeof m.namespace !== 'string' || m.namespace === ''))
    return new ConfigError(
      'NM_ERR_CONFIG_FIELD',
      { file, line: lineOf(['metadata', 'namespace']) ?? line, resource: where(m.name), field: 'metadata.namespace' },
      'metadata.namespace must be a non-empty string (or be left out for "default")',
    );
  return { file, line, apiVersion, kind, name: m.name, namespace: m.namespace as string | undefined, object, lineOf };
}
