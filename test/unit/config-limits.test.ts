// Bounded configuration: "one 28 MB file of 200,000 documents took the control plane from
// 89 MB to 2.4 GB, its readiness stopped answering for ~30 s … and `nodemesh config status`
// crashed". Every limit is refused with NM_ERR_CONFIG_LIMIT naming the file and the limit,
// counted, the last good state kept, nothing partially applied; the CLI prints any status.
import test, { type ExecutionContext } from 'ava';
import { open, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { formatConfigStatus, printConfigStatus } from '../../cli/config-status.js';
import type { ConfigStatus, ResourceStatus } from '../../control/config-store.js';
import type { ControlPlane } from '../../control/control-plane.js';
import type { ConfigLimits } from '../../control/model/limits.js';
import { parseYamlFile } from '../../control/source/files.js';
import { configDir, controlPlane } from '../helpers/control-plane.js';
import { sumMetric, parsePromText } from '../../cli/prom-text.js';
import { idleFor } from '../helpers/idle.js';

const ns = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n`;
const pod = (i: number) =>
  `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p-${i}\n  namespace: default\n  labels: {app: web}\nspec:\n  nodeName: node-a\n  containers: [{name: c, image: x}]\nstatus: {podIP: 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}, phase: Running}\n`;
const docs = (n: number, of: (i: number) => string) => Array.from({ length: n }, (_, i) => of(i)).join('---\n');

interface Running {
  cp: ControlPlane;
  dir: string;
  write(name: string, text: string): Promise<void>;
  /** the names of the resources in force (kind/name) */
  inForce(): string[];
  fileError(name: string): ConfigStatus['fileErrors'][number] | undefined;
  limitErrorsCounted(): Promise<number>;
}

async function running(t: ExecutionContext, files: Record<string, string>, limits: Partial<ConfigLimits> = {}): Promise<Running> {
  const dir = await configDir(t, files);
  const cp = await controlPlane(t, { configDir: dir, rescanMs: 0, debounceMs: 10_000, limits });
  return {
    cp,
    dir,
    write: (name, text) => writeFile(path.join(dir, name), text),
    inForce: () => (cp.snapshot()?.workloads.map((w) => `Pod/${w.name}`) ?? []).concat(nsNames(cp)),
    fileError: (name) => cp.status().fileErrors.find((e) => e.file === path.join(dir, name)),
    limitErrorsCounted: async () => sumMetric(parsePromText(await cp.metrics.registry.metrics()), 'nodemesh_config_errors_total', { code: 'NM_ERR_CONFIG_LIMIT' }),
  };
}

function nsNames(cp: ControlPlane): string[] {
  return cp
    .status()
    .resources.filter((r) => r.kind === 'Namespace' && r.state === 'Accepted')
    .map((r) => `Namespace/${r.name}`);
}

test('a file over the size limit is refused unread, naming the file, its size and the limit; its last good resources stay in force', async (t) => {
  const r = await running(t, { 'a.yaml': ns('kept') }, { fileBytes: 4096 });
  t.deepEqual(r.inForce(), ['Namespace/kept']);
  // 8 KiB of text that is not YAML at all: a read and parse would say "not valid YAML"
  await r.write('a.yaml', `${ns('new')}---\n${'[unclosed '.repeat(800)}`);
  await r.cp.rescan();
  const e = r.fileError('a.yaml');
  t.is(e?.code, 'NM_ERR_CONFIG_LIMIT');
  t.regex(e!.message, /a\.yaml: the file is \d\.\d KiB, over the limit of 4\.0 KiB per file \(--max-file-size\); it was not read, its last good resources stay in force/);
  t.deepEqual(r.inForce(), ['Namespace/kept'], 'nothing of the new content applied, the old kept');
  t.is(await r.limitErrorsCounted(), 1);
});

test('a file with more documents than the limit is refused as a whole: not its first N documents', async (t) => {
  const r = await running(t, { 'a.yaml': ns('kept') }, { documentsPerFile: 3 });
  await r.write('a.yaml', docs(4, (i) => ns(`n${i}`)));
  await r.cp.rescan();
  const e = r.fileError('a.yaml');
  t.is(e?.code, 'NM_ERR_CONFIG_LIMIT');
  t.regex(e!.message, /a\.yaml:\d+: more than 3 documents in one file \(the limit, --max-documents-per-file\); nothing of this file is applied/);
  t.deepEqual(r.inForce(), ['Namespace/kept']);
  await r.write('a.yaml', docs(3, (i) => ns(`n${i}`)));
  await r.cp.rescan();
  t.is(r.fileError('a.yaml'), undefined);
  t.deepEqual(r.inForce(), ['Namespace/n0', 'Namespace/n1', 'Namespace/n2']);
});

test('a resource over the per-resource size is rejected on its own, by name; the file\'s others apply and its last good version stays', async (t) => {
  const r = await running(t, { 'a.yaml': `${ns('small')}---\n${ns('big')}` }, { resourceBytes: 1024 });
  t.deepEqual(r.inForce().sort(), ['Namespace/big', 'Namespace/small']);
  const padded = `${ns('big')}  labels:\n${Array.from({ length: 60 }, (_, i) => `    label-${i}: "${'x'.repeat(20)}"`).join('\n')}\n`;
  await r.write('a.yaml', `${ns('small')}---\n${padded}---\n${ns('other')}`);
  await r.cp.rescan();
  const big = r.cp.status().resources.find((s) => s.name === 'big')!;
  t.is(big.state, 'Rejected');
  t.is(big.code, 'NM_ERR_CONFIG_LIMIT');
  t.regex(big.message, /a\.yaml:\d+: Namespace big: the resource is 2\.\d KiB of YAML, over the limit of 1\.0 KiB per resource \(--max-resource-size.*\(its last good version stays in force\)/);
  t.true(big.servingLastGood);
  t.deepEqual(r.inForce().sort(), ['Namespace/other', 'Namespace/small'], 'the status lists the accepted ones; big is served from its last good version');
  t.truthy(r.cp.snapshot(), 'a snapshot is in force');
});

test('a change that would bring the total of resources over the limit is not applied; the files in force keep theirs', async (t) => {
  const r = await running(t, { 'b.yaml': docs(3, (i) => ns(`b${i}`)) }, { resources: 4 });
  // a.yaml sorts before b.yaml: by path order it would win, but it is the change
  await r.write('a.yaml', docs(2, (i) => ns(`a${i}`)));
  await r.cp.rescan();
  const e = r.fileError('a.yaml');
  t.is(e?.code, 'NM_ERR_CONFIG_LIMIT');
  t.regex(e!.message, /a\.yaml: not applied: with this file the configuration would hold 5 resources, over the limit of 4 in total \(--max-resources\); nothing of it is applied/);
  t.deepEqual(r.inForce(), ['Namespace/b0', 'Namespace/b1', 'Namespace/b2']);
  // b.yaml grows over the limit too: it keeps what it had
  await r.write('b.yaml', docs(5, (i) => ns(`b${i}`)));
  await r.cp.rescan();
  t.regex(r.fileError('b.yaml')!.message, /not applied: .*its last good resources stay in force/);
  t.deepEqual(r.inForce(), ['Namespace/b0', 'Namespace/b1', 'Namespace/b2']);
  // room again: both apply
  await r.write('b.yaml', ns('b0'));
  await r.cp.rescan();
  t.is(r.cp.status().fileErrors.length, 0);
  t.deepEqual(r.inForce(), ['Namespace/a0', 'Namespace/a1', 'Namespace/b0']);
});

test('over the total size at the first read, files are taken in path order, each whole or not at all', async (t) => {
  const r = await running(t, { 'a.yaml': docs(3, (i) => ns(`a${i}`)), 'b.yaml': ns('b'), 'c.yaml': docs(2, (i) => ns(`c${i}`)) }, { totalBytes: 300 });
  // each Namespace document is ~50 bytes: a (3) fits, b fits, c would go over
  t.deepEqual(r.inForce(), ['Namespace/a0', 'Namespace/a1', 'Namespace/a2', 'Namespace/b']);
  t.regex(r.fileError('c.yaml')!.message, /c\.yaml: not applied: the files before it \(in path order\) hold 4 resources .* would go over the limits/);
});

test('a file of 200,000 documents (~40 MB, like the finding\'s 28 MB one) is refused with a clear error, the memory stays put, readiness and `config status` work', async (t) => {
  const r = await running(t, { 'good.yaml': ns('kept') });
  // written in pieces: the test itself never holds the 28 MB
  const big = path.join(r.dir, 'big.yaml');
  const f = await open(big, 'w');
  for (let i = 0; i < 200_000; i += 10_000) await f.write(docs(10_000, (j) => pod(i + j)) + '---\n');
  await f.close();
  t.teardown(() => rm(big, { force: true }));
  global.gc?.();
  const before = process.memoryUsage().rss;
  await r.cp.rescan();
  const grown = process.memoryUsage().rss - before;
  const e = r.fileError('big.yaml');
  t.is(e?.code, 'NM_ERR_CONFIG_LIMIT');
  t.regex(e!.message, /big\.yaml: the file is 3\d\.\d MiB, over the limit of 4\.0 MiB per file \(--max-file-size\); it was not read, nothing of it is applied: split it into several files/);
  t.true(grown < 64 * 1024 * 1024, `the control plane grew ${(grown / 1e6).toFixed(0)} MB reading the directory`);
  t.deepEqual(r.inForce(), ['Namespace/kept']);
  t.true(r.cp.ready());
  const ready = await fetch(`http://127.0.0.1:${r.cp.adminPort}/healthz/ready`);
  t.is(ready.status, 200);
  let printed = '';
  const out = new Writable({
    write(chunk, _enc, cb) {
      printed += String(chunk);
      cb();
    },
  });
  t.is(await printConfigStatus(`127.0.0.1:${r.cp.adminPort}`, out), 1, 'exit 1: a file error');
  t.regex(printed, /Rejected +NM_ERR_CONFIG_LIMIT: .*big\.yaml: the file is/);
  t.regex(printed, /1 accepted, 0 rejected, 1 file error\(s\)/);
});

test('`config status` prints a status of 200,000 resources (a spread of that many arguments overflowed the stack)', (t) => {
  const row = (i: number): ResourceStatus => ({
    file: '/c/a.yaml',
    line: i,
    apiVersion: 'v1',
    kind: 'Pod',
    namespace: 'default',
    name: `p-${i}`,
    resource: `Pod default/p-${i}`,
    state: 'Accepted',
    message: '',
    servingLastGood: false,
  });
  const status: ConfigStatus = {
    configDir: '/c',
    ready: true,
    snapshotVersion: 1,
    resources: Array.from({ length: 200_000 }, (_, i) => row(i)),
    fileErrors: [],
    summary: { accepted: 200_000, rejected: 0, fileErrors: 0 },
  };
  const text = formatConfigStatus(status);
  t.true(text.endsWith('200000 accepted, 0 rejected, 0 file error(s); config /c; snapshot version 1\n'));
  t.is(text.split('\n').length, 200_000 + 4);
});

test('a file of 5,000 documents (the most one file may hold) is parsed in slices: the control plane keeps answering its readiness meanwhile', async (t) => {
  const r = await running(t, {});
  // ~1 MiB: a few seconds of parsing on a loaded machine
  await r.write('many.yaml', docs(5_000, pod));
  let slowest = 0;
  let answered = 0;
  let done = false;
  const probing = (async () => {
    while (!done) {
      const start = performance.now();
      await fetch(`http://127.0.0.1:${r.cp.adminPort}/healthz/ready`);
      slowest = Math.max(slowest, performance.now() - start);
      answered++;
      await idleFor(20, 'readiness probes paced as a kubelet sends them, faster');
    }
  })();
  const readStarted = performance.now();
  await r.cp.rescan();
  const readMs = performance.now() - readStarted;
  done = true;
  await probing;
  t.is(r.cp.snapshot()?.workloads.length, 5_000);
  t.true(answered >= 2, `readiness answered ${answered} times during the read`);
  // parsed in one piece, the read would hold the event loop for all of it; in slices only
  // store and compile hold it (measured ~0.3 s of a read of seconds). A loaded machine slows
  // both alike, so the bound is a share of the read, not a number of milliseconds
  t.true(slowest < readMs / 2, `the slowest readiness answer took ${slowest.toFixed(0)} ms of a ${readMs.toFixed(0)} ms read`);
});

test('parseYamlFile stops at the document limit without composing the rest', (t) => {
  const parsed = parseYamlFile('/x/a.yaml', docs(10, (i) => ns(`n${i}`)) + '---\n[unclosed', { documentsPerFile: 5 });
  if (!('error' in parsed)) return t.fail('expected the limit');
  t.is(parsed.error.code, 'NM_ERR_CONFIG_LIMIT', 'refused on the count before the broken last document is reached');
  t.is(parsed.error.location.line, 26, 'the line of the sixth document');
});
