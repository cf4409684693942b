// `nodemesh lab annotate NS/POD KEY=VALUE… | KEY-…`: `kubectl annotate` for a running lab
// pod, on whatever holds the lab's cluster state:
// - `lab up --kubernetes`: the API server stand-in, by GET and PUT of the Pod (the control
//   plane sees a MODIFIED watch event, as on a cluster); a PUT that lost a race (409
//   Conflict) is retried on the object read again, as kubectl does;
// - otherwise: the lab's config directory, the control plane's file source. The document of
//   that Pod is changed in place (the rest of the file kept as it is) and the file replaced
//   by a rename, so the control plane's watcher never reads half of it.
// The pod keeps running: opting it in or out (`nodemesh.io/mesh=enabled|disabled`, or
// removing the key) changes its enrolment live (ARCHITECTURE.md, "Live opt-in").
// As kubectl: changing a key that already has a value needs `overwrite`; removing an absent
// key is no error.
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments, type Document } from 'yaml';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { KubeApiError, KubeClient, loadKubeConfig, resourcePath } from '../../control/kube/kube-client.js';
import type { LabState } from './lab-state.js';

const log = logger('lab/annotate');

/** `value` undefined: remove the key. */
export interface AnnotationChange {
  key: string;
  value?: string;
}

export interface LabAnnotateResult {
  pod: string;
  /** where the change was written */
  via: 'kubernetes' | 'file';
  file?: string;
  annotations: Record<string, string>;
  changed: boolean;
}

const PODS = { group: '', version: 'v1', plural: 'pods' };
const CONFLICT_RETRIES = 5;
// a qualified name, as the API server validates annotation keys
const NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** `KEY=VALUE` and `KEY-` arguments as kubectl reads them; throws naming the bad one. */
export function parseAnnotations(args: string[]): AnnotationChange[] {
  if (args.length === 0) throw new NodemeshError('NM_ERR_LAB', 'lab annotate: no change given (KEY=VALUE to set, KEY- to remove)');
  return args.map((a) => {
    const eq = a.indexOf('=');
    const change: AnnotationChange = eq >= 0 ? { key: a.slice(0, eq), value: a.slice(eq + 1) } : a.endsWith('-') ? { key: a.slice(0, -1) } : { key: '' };
    if (eq < 0 && !a.endsWith('-')) throw new NodemeshError('NM_ERR_LAB', `lab annotate: ${JSON.stringify(a)}: expected KEY=VALUE to set or KEY- to remove`);
    const why = invalidKey(change.key);
    if (why) throw new NodemeshError('NM_ERR_LAB', `lab annotate: ${JSON.stringify(a)}: the key ${why}`);
    return change;
  });
}

function invalidKey(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !PREFIX.test(prefix))) return 'prefix must be a DNS subdomain (lowercase letters, digits, - and .)';
  if (!NAME.test(name)) return 'name must be 1-63 letters, digits, -, _ or ., starting and ending with a letter or digit';
  return undefined;
}

/** The annotations after `changes`, or an error naming a key that needs `overwrite`. */
function applyChanges(before: Record<string, string>, changes: AnnotationChange[], overwrite: boolean, pod: string): Record<string, string> {
  const taken = changes.filter((c) => c.value !== undefined && c.key in before && before[c.key] !== c.value);
  if (taken.length > 0 && !overwrite) {
    throw new NodemeshError('NM_ERR_LAB', `lab annotate: --overwrite is false but pod ${pod} already has ${taken.map((c) => `${c.key}=${before[c.key]}`).join(', ')}`);
  }
  const after = { ...before };
  for (const c of changes) {
    if (c.value === undefined) delete after[c.key];
    else after[c.key] = c.value;
  }
  return after;
}

const same = (a: Record<string, string>, b: Record<string, string>) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

export async function labAnnotate(state: LabState, target: string, changes: AnnotationChange[], opts: { overwrite?: boolean } = {}): Promise<LabAnnotateResult> {
  const [namespace, name] = target.includes('/') ? target.split('/', 2) as [string, string] : ['default', target];
  const pod = state.pods.find((p) => p.namespace === namespace && p.name === name);
  if (!pod) throw new NodemeshError('NM_ERR_LAB', `lab ${state.name} has no pod ${namespace}/${name} (pods: ${state.pods.map((p) => `${p.namespace}/${p.name}`).join(', ') || 'none'})`);
  const result = state.apiserver ? await viaApi(state.apiserver.kubeconfig, namespace, name, changes, opts.overwrite ?? false) : await viaFile(state.configDir, namespace, name, changes, opts.overwrite ?? false);
  log.info({ lab: state.name, pod: result.pod, via: result.via, changed: result.changed, annotations: result.annotations }, 'pod annotated');
  return result;
}

async function viaApi(kubeconfig: string, namespace: string, name: string, changes: AnnotationChange[], overwrite: boolean): Promise<LabAnnotateResult> {
  const client = new KubeClient(loadKubeConfig({ kubeconfig }).kc, { requestTimeoutMs: 10_000 });
  const p = resourcePath(PODS, namespace, name);
  const uid = `${namespace}/${name}`;
  for (let attempt = 0; ; attempt++) {
    const obj = await client.get<{ metadata: { annotations?: Record<string, string> } }>(p);
    const before = obj.metadata.annotations ?? {};
    const after = applyChanges(before, changes, overwrite, uid);
    if (same(before, after)) return { pod: uid, via: 'kubernetes', annotations: after, changed: false };
    obj.metadata.annotations = after;
    try {
      await client.replace(p, obj);
      return { pod: uid, via: 'kubernetes', annotations: after, changed: true };
    } catch (err) {
      // someone else wrote the Pod between our GET and PUT: read it again
      if (!(err instanceof KubeApiError && err.statusCode === 409) || attempt >= CONFLICT_RETRIES) throw err;
    }
  }
}

async function viaFile(configDir: string, namespace: string, name: string, changes: AnnotationChange[], overwrite: boolean): Promise<LabAnnotateResult> {
  const uid = `${namespace}/${name}`;
  for (const file of (await readdir(configDir)).filter((f) => /\.ya?ml$/i.test(f)).sort()) {
    const full = path.join(configDir, file);
    const text = await readFile(full, 'utf8');
    const parsed = parseAllDocuments(text);
    const docs = Array.isArray(parsed) ? parsed : [];
    const at = docs.findIndex((d) => isPod(d, namespace, name));
    const doc = docs[at];
    if (!doc) continue;
    const before = { ...((doc.getIn(['metadata', 'annotations']) as { toJSON(): Record<string, string> } | undefined)?.toJSON() ?? {}) };
    const after = applyChanges(before, changes, overwrite, uid);
    if (same(before, after)) return { pod: uid, via: 'file', file: full, annotations: after, changed: false };
    if (Object.keys(after).length === 0) doc.deleteIn(['metadata', 'annotations']);
    else doc.setIn(['metadata', 'annotations'], doc.createNode(after));
    // a name the control plane's reader skips (not *.yaml), renamed over the file
    const tmp = path.join(configDir, `.${file}.${process.pid}.tmp`);
    await writeFile(tmp, withDocument(text, docs, at));
    await rename(tmp, full);
    return { pod: uid, via: 'file', file: full, annotations: after, changed: true };
  }
  throw new NodemeshError('NM_ERR_LAB', `pod ${uid} is in no file of the lab's config directory ${configDir}`);
}

/**
 * The file with document `at` serialized anew and every other one as it was written (its
 * text from the source, comments and layout kept); the whole file serialized anew if the
 * documents' ranges do not tile the text.
 */
function withDocument(text: string, docs: Document[], at: number): string {
  const start = (d: Document | undefined) => d?.range?.[0];
  const pieces = docs.map((d, i) => text.slice(i === 0 ? 0 : (start(d) ?? text.length), i + 1 < docs.length ? (start(docs[i + 1]) ?? text.length) : text.length));
  if (pieces.join('') !== text) return docs.map((d) => d.toString()).join('');
  pieces[at] = docs[at]!.toString();
  return pieces.join('');
}

function isPod(d: Document, namespace: string, name: string): boolean {
  const o = d.toJSON() as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null;
  return !!o && o.kind === 'Pod' && o.metadata?.name === name && (o.metadata.namespace ?? 'default') === namespace;
}
