// The agent's lifecycle without root: the listening-socket handoff between two real
// processes over a Unix socket (SCM_RIGHTS), with HTTP clients hammering the socket the whole
// time; the last good state written and read back (age, node, damage, the snapshot check);
// certificates taken up from it (checked again, never a CA call); draining; and the lab's
// supervisor restarting and upgrading a process as a DaemonSet does.
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { takeOver } from '../../agent/lifecycle/handoff.js';
import { drain } from '../../agent/lifecycle/drain.js';
import { LAST_GOOD_FILE, LastGoodWriter, MAX_AGE_MS, readLastGood } from '../../agent/lifecycle/last-good.js';
import { IdentityManager, type HeldCertificate } from '../../agent/identity/identity-manager.js';
import type { CertificateSigner } from '../../control/api/ca-client.js';
import { packagePath } from '../../common/paths.js';
import { fullSnapshot } from '../helpers/snapshot-fixture.js';
import { TestCa } from '../helpers/test-ca.js';
import { eventually } from '../helpers/eventually.js';
import { idleFor } from '../helpers/idle.js';

const handoffUrl = new URL('../../agent/lifecycle/handoff.js', import.meta.url).href;
const listenersUrl = new URL('../../agent/lifecycle/listeners.js', import.meta.url).href;

function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-lifecycle-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Event = { event: string; [k: string]: unknown };

/** A child process printing JSON lines; killed with the test. */
function child(t: ExecutionContext, code: string, env: Record<string, string>): { proc: ChildProcess; events: Event[]; next: (e: string) => Promise<Event> } {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void proc.kill('SIGKILL'));
  const events: Event[] = [];
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => events.push(JSON.parse(l) as Event));
  proc.stderr!.on('data', () => {});
  return { proc, events, next: (e) => eventually(() => events.find((x) => x.event === e), 30_000, `event ${e}`) };
}

// The running agent's part: an HTTP server on a listener it made, answering "old", offered to
// a successor; on release it stops accepting and exits once its connections are done. A
// connection it accepted after its release (there must be none) is answered "old-after-release".
const OLD_AGENT = `
import http from 'node:http';
const { offerHandoff } = await import(process.env.HANDOFF_URL);
const { bindListener } = await import(process.env.LISTENERS_URL);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const l = bindListener({ name: 'outbound', host: '127.0.0.1', port: Number(process.env.PORT) });
let released = false;
const server = http.createServer({ keepAlive: false }, (req, res) => res.end(req.socket.acceptedAfterRelease ? 'old-after-release' : 'old'));
server.on('connection', (s) => { s.acceptedAfterRelease = released; });
server.listen({ fd: l.fd, backlog: 4096 }, () => out({ event: 'listening' }));
let prepared = 0;
const h = await offerHandoff(process.env.STATE_DIR, {
  listeners: () => [l],
  prepare: () => { prepared++; out({ event: 'prepared' }); },
  release: async () => { released = true; server.close(() => { out({ event: 'drained' }); process.exit(0); }); out({ event: 'released', prepared }); },
});
out({ event: 'offering' });
`;

async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A request every few ms on a new connection until stopped; who answered, and what failed. */
function hammer(port: number) {
  const answers: Array<{ at: number; by: string }> = [];
  const errors: string[] = [];
  let stopped = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, agent: false, timeout: 20_000 }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => {
          answers.push({ at: Date.now(), by: body });
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => {
        errors.push(e.code ?? e.message);
        resolve();
      });
    });
  const loop = (async () => {
    const pending: Promise<void>[] = [];
    while (!stopped) {
      pending.push(one());
      await idleFor(3, 'a new connection every few ms');
    }
    await Promise.all(pending);
  })();
  return { answers, errors, stop: async () => ((stopped = true), await loop) };
}

test('a successor takes the listening socket over: while both run, then after the old one let go, no connection is refused or lost', async (t) => {
  const stateDir = tempDir(t);
  const port = await freePort();
  const old = child(t, OLD_AGENT, { HANDOFF_URL: handoffUrl, LISTENERS_URL: listenersUrl, STATE_DIR: stateDir, PORT: String(port) });
  await old.next('offering');
  const load = hammer(port);
  await eventually(() => load.answers.length >= 5, 30_000, 'the old agent serving');

  const takenAt = Date.now();
  const taken = takeOver(stateDir, [{ name: 'outbound', host: '127.0.0.1', port }]);
  t.truthy(taken, 'the running agent answered');
  t.deepEqual(taken!.listeners.map(({ name, host, port: p }) => ({ name, host, port: p })), [{ name: 'outbound', host: '127.0.0.1', port }]);
  t.is(taken!.predecessor.pid, old.proc.pid!);
  t.truthy(await old.next('prepared'), 'it wrote its state before handing over');
  const server = http.createServer({ keepAlive: false }, (_req, res) => res.end('new'));
  t.teardown(() => void server.close());
  await new Promise<void>((r) => server.listen({ fd: taken!.listeners[0]!.fd, backlog: 4096 }, r));
  // both accept on the one socket now: the successor serves before the old one lets go
  await eventually(() => load.answers.some((a) => a.by === 'new'), 30_000, 'the successor serving beside the old agent');
  await taken!.predecessor.confirm();
  const releasedAt = Date.now();
  t.truthy(await old.next('released'));
  await eventually(() => load.answers.filter((a) => a.by === 'new' && a.at > releasedAt).length >= 10, 30_000, 'the successor serving alone');
  await load.stop();
  const exit = await new Promise<number | null>((r) => (old.proc.exitCode !== null ? r(old.proc.exitCode) : old.proc.once('exit', r)));

  t.deepEqual(load.errors, [], 'no request failed');
  t.true(load.answers.some((a) => a.by === 'old' && a.at < takenAt), 'the old agent served before');
  t.true(load.answers.some((a) => a.by === 'new'), 'the successor served');
  t.false(load.answers.some((a) => a.by === 'old-after-release'), 'after the release only the successor accepts');
  t.is(exit, 0);
  t.false(fs.existsSync(path.join(stateDir, 'handoff.sock')), 'the old agent took its handoff socket away');
});

test('a successor that goes away before it serves takes nothing: the running agent keeps serving and hands over to the next one', async (t) => {
  const stateDir = tempDir(t);
  const port = await freePort();
  const old = child(t, OLD_AGENT, { HANDOFF_URL: handoffUrl, LISTENERS_URL: listenersUrl, STATE_DIR: stateDir, PORT: String(port) });
  await old.next('offering');
  const first = takeOver(stateDir, [{ name: 'outbound', host: '127.0.0.1', port }])!;
  // it dies before it serves: its copies of the sockets and the conversation go
  for (const l of first.listeners) fs.closeSync(l.fd);
  first.predecessor.abandon();
  const load = hammer(port);
  await eventually(() => load.answers.length >= 20, 30_000, 'the running agent serving');
  await load.stop();
  t.deepEqual(load.errors, []);
  t.true(load.answers.length > 0 && load.answers.every((a) => a.by === 'old'));
  const second = await eventually(() => takeOver(stateDir, [{ name: 'outbound', host: '127.0.0.1', port }]), 30_000, 'a second handoff');
  t.is(second.predecessor.pid, old.proc.pid!);
  t.is(second.listeners.length, 1);
  fs.closeSync(second.listeners[0]!.fd);
  second.predecessor.abandon();
});

test('with no agent running (none yet, or a crashed one whose socket file is left) there is nothing to take over', async (t) => {
  const stateDir = tempDir(t);
  t.is(takeOver(stateDir, []), undefined);
  const port = await freePort();
  const old = child(t, OLD_AGENT, { HANDOFF_URL: handoffUrl, LISTENERS_URL: listenersUrl, STATE_DIR: stateDir, PORT: String(port) });
  await old.next('offering');
  old.proc.kill('SIGKILL');
  await new Promise((r) => old.proc.once('exit', r));
  t.true(fs.existsSync(path.join(stateDir, 'handoff.sock')), 'kill -9 leaves the socket file');
  t.is(takeOver(stateDir, []), undefined);
});

// ---- the last good state -------------------------------------------------------------

async function certificates(): Promise<{ ca: TestCa; held: HeldCertificate[] }> {
  const ca = await TestCa.create();
  const web = await ca.issue('spiffe://cluster.local/ns/shop/sa/web');
  return { ca, held: [{ spiffeId: web.spiffeId, certChainPem: web.certChainPem, keyPem: web.keyPem, renewAt: Date.now() + 600_000 }] };
}

test('the last good state is written atomically (0600) and read back, the snapshot checked again', async (t) => {
  const dir = path.join(tempDir(t), 'state');
  const { held } = await certificates();
  const snapshot = fullSnapshot(7);
  const w = new LastGoodWriter(dir, 'node-a', () => ({ snapshot, identities: held }), 10);
  w.changed();
  await eventually(() => fs.existsSync(path.join(dir, LAST_GOOD_FILE)), 20_000, 'the file');
  t.is(fs.statSync(path.join(dir, LAST_GOOD_FILE)).mode & 0o777, 0o600);
  t.is(fs.statSync(dir).mode & 0o777, 0o700);
  t.deepEqual(fs.readdirSync(dir), [LAST_GOOD_FILE], 'no temporary file left');
  const back = readLastGood(dir, 'node-a');
  t.is(back?.snapshot?.version, 7);
  t.deepEqual(back?.snapshot, snapshot);
  t.deepEqual(back?.identities, held);
  w.close();
});

test('a last good state of another node, older than the bound, damaged, or with a snapshot that fails the check is not used', async (t) => {
  const dir = tempDir(t);
  const w = new LastGoodWriter(dir, 'node-a', () => ({ snapshot: fullSnapshot(), identities: [] }));
  w.changed();
  w.flush();
  t.truthy(readLastGood(dir, 'node-a'));
  t.is(readLastGood(dir, 'node-b'), undefined);
  t.is(readLastGood(dir, 'node-a', Date.now() + MAX_AGE_MS + 1_000), undefined);
  const file = path.join(dir, LAST_GOOD_FILE);
  const good = JSON.parse(fs.readFileSync(file, 'utf8')) as { snapshot: { workloads: Array<{ ip: string }> } };
  good.snapshot.workloads[0]!.ip = 'not an ip';
  fs.writeFileSync(file, JSON.stringify(good));
  t.is(readLastGood(dir, 'node-a'), undefined);
  fs.writeFileSync(file, '{"format":1, "node": "node-a", "writtenAt": ');
  t.is(readLastGood(dir, 'node-a'), undefined);
});

test('certificates the previous agent held are taken up after the same checks as fresh ones, without asking the CA; others are refused', async (t) => {
  const { ca, held } = await certificates();
  const other = await TestCa.create('another CA');
  const foreign = await other.issue('spiffe://cluster.local/ns/shop/sa/db');
  const expired = await ca.issue('spiffe://cluster.local/ns/shop/sa/old', { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
  const swapped = await ca.issue('spiffe://cluster.local/ns/shop/sa/swapped');
  const calls: string[] = [];
  const signer: CertificateSigner = {
    createCertificate: async (req) => {
      calls.push(req.identity);
      throw new Error('the CA is not reachable in this test');
    },
    close: () => {},
  };
  const m = new IdentityManager({ node: 'node-a', signer, initialTrustBundle: [ca.certPem], prefetch: false });
  t.teardown(() => m.close());
  const restored = m.restore([
    ...held,
    { spiffeId: foreign.spiffeId, certChainPem: foreign.certChainPem, keyPem: foreign.keyPem, renewAt: 0 },
    { spiffeId: expired.spiffeId, certChainPem: expired.certChainPem, keyPem: expired.keyPem, renewAt: 0 },
    { spiffeId: swapped.spiffeId, certChainPem: swapped.certChainPem, keyPem: held[0]!.keyPem, renewAt: 0 },
  ]);
  t.is(restored, 1);
  const cert = await m.certificate(held[0]!.spiffeId);
  t.is(new X509Certificate(cert.certChainPem).fingerprint256, new X509Certificate(held[0]!.certChainPem).fingerprint256);
  t.is(cert.keyPem, held[0]!.keyPem);
  t.deepEqual(calls, []);
  t.deepEqual(m.held().map((h) => [h.spiffeId, h.renewAt]), [[held[0]!.spiffeId, held[0]!.renewAt]], 'renewal stays when it was due');
});

// ---- draining --------------------------------------------------------------------------

test('a drain ends when no connection is left, when its period is over, or when it is cut short', async (t) => {
  let open = 3;
  const timer = setInterval(() => (open = Math.max(0, open - 1)), 30);
  t.teardown(() => clearInterval(timer));
  t.is(await drain(async () => open, 30_000, new Promise(() => {})), 'drained');
  const started = Date.now();
  t.is(await drain(async () => 1, 200, new Promise(() => {})), 'timeout');
  t.true(Date.now() - started >= 190);
  t.is(await drain(async () => 1, 60_000, Promise.resolve()), 'cut');
});

// ---- the lab's DaemonSet stand-in ------------------------------------------------------------

test("the lab's supervisor restarts a killed process at once, runs a second one beside it for an upgrade, and ends them all on SIGTERM", async (t) => {
  const dir = tempDir(t);
  const starts = path.join(dir, 'starts.jsonl');
  const sup = spawn(process.execPath, [packagePath('dist', 'deploy', 'lab', 'lab-supervisor.js'), '--starts', starts, '--', process.execPath, '-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.teardown(() => void sup.kill('SIGKILL'));
  const events = () => (fs.existsSync(starts) ? fs.readFileSync(starts, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Event & { pid: number; reason?: string }) : []);
  const first = await eventually(() => events().find((e) => e.event === 'start'), 30_000, 'the first start');
  t.is(first.reason, 'initial');
  process.kill(first.pid, 'SIGKILL');
  const restart = await eventually(() => events().find((e) => e.event === 'start' && e.reason === 'restart'), 30_000, 'a restart');
  const died = events().find((e) => e.event === 'exit' && e.pid === first.pid) as unknown as { at: number; signal: string };
  t.is(died.signal, 'SIGKILL');
  t.true((restart as unknown as { at: number }).at - died.at < 1_000, 'the first restart comes at once');
  sup.kill('SIGUSR2');
  const upgrade = await eventually(() => events().find((e) => e.event === 'start' && e.reason === 'upgrade'), 30_000, 'an upgrade');
  t.not(upgrade.pid, restart.pid);
  t.notThrows(() => process.kill(restart.pid, 0), 'the old one runs beside the new one');
  // the old one exits (after handing over): not restarted, it is not the current one
  process.kill(restart.pid, 'SIGTERM');
  await eventually(() => events().find((e) => e.event === 'exit' && e.pid === restart.pid), 30_000, 'the old exit');
  await idleFor(300, 'a period in which a restart of the handed-over agent would come');
  t.is(events().filter((e) => e.event === 'start').length, 3);
  const code = new Promise((r) => sup.once('exit', r));
  sup.kill('SIGTERM');
  t.is(await code, 0);
  t.truthy(events().find((e) => e.event === 'exit' && e.pid === upgrade.pid), 'its agents ended with it');
});
