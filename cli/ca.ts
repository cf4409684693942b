// `nodemesh ca …`: operate the control plane's CA through its CA dir.
//   ca rotate (--ca-dir DIR | --name LAB) [--overlap DURATION]   root rotation
//   ca status (--ca-dir DIR | --name LAB)                        roots trusted now, rotation in progress
//   ca node-ca --out DIR                                         a CA for node credentials
//   ca node-credential --node-ca DIR --node NODE --out DIR       a node's credential (agent --node-credential)
//
// A rotation is requested by dropping rotate-request.json into the CA dir (0700, root's):
// who may request one is who may read the CA's keys, with no mutating endpoint on the
// network. The control plane picks it up within a second and answers in rotate-result.json.
import { randomUUID, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NodemeshError } from '../common/errors.js';
import { splitPemCertificates } from '../control/api/x509-svid.js';
import { CaStore, type RotateResult } from '../control/ca/store.js';
import { createNodeCa, issueNodeCredential, NODE_CA_FILES } from '../control/ca/node-credentials.js';
import { outputFormat, UsageError, type Values } from './command-table.js';
import { printData } from './output.js';

/** `90s`, `10m`, `24h`, `1h30m`, `2d`, or a number of seconds → seconds. */
export function parseDurationSeconds(s: string): number {
  if (/^\d+$/.test(s)) return Number(s);
  const re = /(\d+)(d|h|m|s)/g;
  const unit: Record<string, number> = { d: 86400, h: 3600, m: 60, s: 1 };
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * unit[m[2]!]!;
    consumed += m[0].length;
  }
  if (consumed !== s.length || s.length === 0) throw new NodemeshError('NM_ERR_CA', `invalid duration ${JSON.stringify(s)}: expected e.g. 90s, 10m, 24h, 1h30m, 2d`);
  return total;
}

/** Drops a rotation request into `caDir` and waits for the CA's answer. */
export async function requestRotation(caDir: string, opts: { overlapSeconds?: number; timeoutMs?: number } = {}): Promise<RotateResult> {
  const store = new CaStore(caDir);
  const id = randomUUID();
  await store.writeRotateRequest({ id, requestedAt: new Date().toISOString(), ...(opts.overlapSeconds !== undefined ? { overlapSeconds: opts.overlapSeconds } : {}) });
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (Date.now() < deadline) {
    const r = await store.readRotateResult().catch(() => undefined);
    if (r?.id === id) return r;
    await sleep(100);
  }
  throw new NodemeshError('NM_ERR_CA', `no answer to the rotation request in ${caDir} within ${Math.round((opts.timeoutMs ?? 30_000) / 1000)} s: is the control plane running with --ca-dir ${caDir}?`);
}

async function caDirOf(values: { 'ca-dir'?: string | undefined; name?: string | undefined }): Promise<string> {
  if (values['ca-dir']) return values['ca-dir'];
  const { labState } = await import('../deploy/lab/lab.js');
  const { labCaDir } = await import('../deploy/lab/lab-credentials.js');
  return labCaDir((await labState(values.name)).stateDir);
}

function describe(pem: string): string {
  const x = new X509Certificate(pem);
  return `${x.subject.replace(/\n/g, ', ')}  (sha256 ${x.fingerprint256.slice(0, 23)}…, expires ${new Date(x.validTo).toISOString()})`;
}

const out = (s: string) => process.stdout.write(`${s}\n`);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export async function runCaRotate(v: Values): Promise<number> {
  const dir = await caDirOf({ 'ca-dir': str(v['ca-dir']), name: str(v.name) });
  const overlap = str(v.overlap);
  const r = await requestRotation(dir, overlap ? { overlapSeconds: parseDurationSeconds(overlap) } : {});
  if (!r.ok) {
    process.stderr.write(`nodemesh: rotation refused: ${r.error}\n`);
    return 1;
  }
  out(`root rotated (${r.rotation!.id})`);
  out(`  new root:      ${describe(r.rotation!.newRootPem)}`);
  out(`  previous root: ${describe(r.rotation!.previousRootPem)}`);
  out(`  both are trusted until ${r.rotation!.retireAt}; agents renew their certificates under the new root meanwhile`);
  return 0;
}

export async function runCaStatus(v: Values): Promise<number> {
  const store = new CaStore(await caDirOf({ 'ca-dir': str(v['ca-dir']), name: str(v.name) }));
  const roots = splitPemCertificates(await readFile(store.file('trustBundle'), 'utf8'));
  const rotation = await store.loadRotation();
  const data = {
    roots: roots.map((pem) => {
      const x = new X509Certificate(pem);
      return { subject: x.subject.replace(/\n/g, ', '), sha256: x.fingerprint256, notBefore: new Date(x.validFrom).toISOString(), notAfter: new Date(x.validTo).toISOString() };
    }),
    rotation: rotation ? { id: rotation.id, rotatedAt: rotation.rotatedAt, retireAt: rotation.retireAt } : null,
  };
  printData(process.stdout, outputFormat(v.output), data, () => {
    const lines = [`trust bundle (${roots.length} root${roots.length === 1 ? '' : 's'}, the last signs):`, ...roots.map((r) => `  ${describe(r)}`)];
    if (rotation) lines.push(`rotation ${rotation.id} since ${rotation.rotatedAt}: the previous root is dropped at ${rotation.retireAt}`);
    return `${lines.join('\n')}\n`;
  });
  return 0;
}

export async function runCaNodeCa(v: Values): Promise<number> {
  const dir = str(v.out);
  if (!dir) throw new UsageError('ca node-ca: --out DIR is required');
  await createNodeCa(dir);
  out(`node CA written to ${dir} (give ${path.join(dir, NODE_CA_FILES.cert)} to the control plane as --node-ca)`);
  return 0;
}

export async function runCaNodeCredential(v: Values): Promise<number> {
  const nodeCa = str(v['node-ca']);
  const node = str(v.node);
  const dir = str(v.out);
  if (!nodeCa || !node || !dir) throw new UsageError('ca node-credential: --node-ca DIR --node NODE --out DIR are required');
  const [certPem, keyPem] = await Promise.all([readFile(path.join(nodeCa, NODE_CA_FILES.cert), 'utf8'), readFile(path.join(nodeCa, NODE_CA_FILES.key), 'utf8')]);
  await issueNodeCredential({ certPem, keyPem }, node, dir);
  out(`credential of node ${node} written to ${dir} (nodemesh agent --node-credential ${dir})`);
  return 0;
}
