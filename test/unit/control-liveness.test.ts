// Control-plane liveness as an agent sees it: "a frozen control plane (SIGSTOP) was noticed
// by agents only after 35.6 s". A real control plane on loopback behind a relay that can
// freeze: it stops moving bytes both ways while every TCP connection stays open, which is
// what a SIGSTOP'd or partitioned control plane looks like from the agent's side (the
// kernel answers, the process does not).
import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createCertificateClient } from '../../control/api/ca-client.js';
import { ControlPlaneCredentials } from '../../control/api/control-credentials.js';
import { CA_FILES } from '../../control/ca/store.js';
import { createNodeCa, issueNodeCredential, NODE_CA_FILES } from '../../control/ca/node-credentials.js';
import { csr } from '../helpers/csr.js';
import { controlTarget, CONTROL_SERVER_NAME, KEEPALIVE_MS, KEEPALIVE_TIMEOUT_MS } from '../../control/api/control-target.js';
import { watchSnapshots, type SnapshotWatch } from '../../control/api/discovery-client.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { configDir, controlPlane } from '../helpers/control-plane.js';
import { eventually } from '../helpers/eventually.js';

const service = (name: string, ip: string) => `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  clusterIP: ${ip}\n  ports:\n  - port: 80\n`;

/** A TCP relay to `port` that can stop moving bytes (and accepting) without closing anything. */
class FreezableRelay {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private frozen = false;
  private pending: net.Socket[] = [];
  port = 0;

  constructor(private readonly target: number) {
    this.server = net.createServer((c) => this.accept(c));
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  private accept(c: net.Socket): void {
    this.track(c);
    if (this.frozen) {
      c.pause(); // accepted by the kernel, never answered: a frozen process
      this.pending.push(c);
      return;
    }
    this.forward(c);
  }

  private forward(c: net.Socket): void {
    const up = net.connect(this.target, '127.0.0.1');
    this.track(up);
    c.pipe(up);
    up.pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => {});
  }

  freeze(): void {
    this.frozen = true;
    for (const s of this.sockets) s.pause();
  }

  thaw(): void {
    this.frozen = false;
    for (const s of this.sockets) s.resume();
    for (const c of this.pending.splice(0)) {
      c.resume();
      if (!c.destroyed) this.forward(c);
    }
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}

interface Agent {
  watch: SnapshotWatch;
  received: Snapshot[];
  /** [ms since the test's start, connected] for each change */
  changes: { at: number; up: boolean }[];
  errors: string[];
}

function agent(t: ExecutionContext, address: string, extra: Partial<Parameters<typeof watchSnapshots>[0]> = {}): Agent {
  const a: Agent = { watch: undefined as unknown as SnapshotWatch, received: [], changes: [], errors: [] };
  a.watch = watchSnapshots({
    address,
    node: 'node-a',
    initialBackoffMs: 50,
    maxBackoffMs: 500,
    onSnapshot: (s) => a.received.push(s),
    onConnected: (up) => a.changes.push({ at: performance.now(), up }),
    onError: (e) => a.errors.push(e.message),
    ...extra,
  });
  t.teardown(() => a.watch.close());
  return a;
}

async function relayed(t: ExecutionContext) {
  const dir = await configDir(t, { 'a.yaml': service('web', '10.96.0.10') });
  const cp = await controlPlane(t, { configDir: dir, rescanMs: 0 });
  const relay = await new FreezableRelay(cp.grpcPort).listen();
  t.teardown(() => relay.close());
  return { cp, relay, dir };
}

test(`a frozen control plane is noticed within 10 s (keepalive ${KEEPALIVE_MS / 1000} s + ${KEEPALIVE_TIMEOUT_MS / 1000} s), and the agent keeps its snapshot`, async (t) => {
  const { relay } = await relayed(t);
  const a = agent(t, `127.0.0.1:${relay.port}`);
  await eventually(() => a.received.length === 1 && a.watch.connected(), 30_000, 'the first snapshot');
  relay.freeze();
  const frozenAt = performance.now();
  await eventually(() => !a.watch.connected(), 20_000, 'the agent to notice');
  const noticedMs = a.changes.at(-1)!.at - frozenAt;
  t.true(noticedMs <= 10_000, `noticed after ${(noticedMs / 1000).toFixed(1)} s`);
  t.true(noticedMs >= KEEPALIVE_TIMEOUT_MS - 500, `not before a PING could time out (${(noticedMs / 1000).toFixed(1)} s)`);
  t.is(a.watch.snapshot()?.version, a.received[0]!.version, 'the last snapshot stays in use');
  t.true(a.errors.some((e) => /stream failed \(UNAVAILABLE/.test(e)), a.errors.join('\n'));
});

test('when the frozen control plane comes back, the agent resumes: the same content is not delivered again', async (t) => {
  const { relay } = await relayed(t);
  const a = agent(t, `127.0.0.1:${relay.port}`, { keepaliveMs: 500, keepaliveTimeoutMs: 500, connectTimeoutMs: 1_000 });
  await eventually(() => a.received.length === 1 && a.watch.connected(), 30_000, 'the first snapshot');
  relay.freeze();
  await eventually(() => !a.watch.connected(), 10_000, 'the agent to notice');
  // while frozen, new connections hang in the handshake and are given up after connectTimeoutMs
  await eventually(() => a.errors.some((e) => /no connection within 1000 ms \(channel (CONNECTING|TRANSIENT_FAILURE|IDLE)/.test(e)), 10_000, 'a hung connection attempt given up');
  relay.thaw();
  await eventually(() => a.watch.connected(), 10_000, 'the agent to reconnect');
  t.is(a.received.length, 1, 'nothing delivered again: the agent carries on with what it has');
});

test('a restarted control plane with the same configuration (a new version number) is not a new snapshot to the agent; a changed one is', async (t) => {
  const dir = await configDir(t, { 'a.yaml': service('web', '10.96.0.10') });
  const first = await controlPlane(t, { configDir: dir, rescanMs: 0 });
  const port = first.grpcPort;
  // a second one over the same directory: a replica, same content, its own generatedAt
  const second = await controlPlane(t, { configDir: dir, rescanMs: 0 });
  const a = agent(t, `127.0.0.1:${port},127.0.0.1:${second.grpcPort}`);
  await eventually(() => a.received.length === 1 && a.watch.connected(), 30_000, 'the first snapshot');
  const served = first.agents().length === 1 ? first : second;
  const other = served === first ? second : first;
  await served.close();
  await eventually(() => other.agents().length === 1, 10_000, 'the agent to move to the other replica');
  t.is(a.received.length, 1, 'the other replica\'s snapshot has the same content: not applied again');
  t.not(other.snapshot()!.generatedAt, a.received[0]!.generatedAt);
  // a change on the replica it is on now does arrive
  await writeFile(path.join(dir, 'b.yaml'), service('api', '10.96.0.11'));
  await other.rescan();
  await eventually(() => a.received.length === 2, 30_000, 'the changed snapshot');
  t.deepEqual(a.received[1]!.services.map((s) => s.name), ['api', 'web']);
});

test('several replicas: an agent whose first address is down connects to another one', async (t) => {
  const dir = await configDir(t, { 'a.yaml': service('web', '10.96.0.10') });
  const cp = await controlPlane(t, { configDir: dir, rescanMs: 0 });
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const deadPort = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const a = agent(t, `127.0.0.1:${deadPort},127.0.0.1:${cp.grpcPort}`);
  await eventually(() => a.received.length === 1, 30_000, 'a snapshot from the live replica');
  t.is(cp.agents().length, 1);
});

test('over TLS, a list of replicas is verified against the control plane\'s name: discovery and certificates work with the first address down', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nm-liveness-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'config'));
  await writeFile(
    path.join(dir, 'config', 'pod.yaml'),
    'apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop}\nspec: {nodeName: node-a, serviceAccountName: web, containers: [{name: app}]}\nstatus: {phase: Running, podIP: 10.244.0.2}\n',
  );
  const nodeCa = await createNodeCa(path.join(dir, 'node-ca'));
  await issueNodeCredential(nodeCa, 'node-a', path.join(dir, 'cred'));
  const cp = await controlPlane(t, { configDir: path.join(dir, 'config'), ca: { dir: path.join(dir, 'ca'), nodeCaFile: path.join(dir, 'node-ca', NODE_CA_FILES.cert), rotationPollMs: 0 } });
  const creds = new ControlPlaneCredentials({ rootCertFile: path.join(dir, 'ca', CA_FILES.trustBundle), nodeCredentialDir: path.join(dir, 'cred') });
  t.teardown(() => creds.close());
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const deadPort = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const address = `127.0.0.1:${deadPort},127.0.0.1:${cp.grpcPort}`;
  const a = agent(t, address, { credentials: creds.credentials });
  await eventually(() => a.received.length === 1, 30_000, `a snapshot over TLS (errors: ${a.errors.join('; ')})`);
  const client = createCertificateClient({ address, credentials: creds.credentials, timeoutMs: 30_000 });
  t.teardown(() => client.close());
  const chain = await client.createCertificate({ csrPem: csr(['spiffe://cluster.local/ns/shop/sa/web']), identity: 'spiffe://cluster.local/ns/shop/sa/web', validitySeconds: 0 });
  t.true(chain.length >= 2, 'a leaf and its root');
});

test('--control: one host:port as given; a list of IPs becomes one target verified against the control plane\'s name; a list with a name is refused', (t) => {
  t.is(controlTarget('control.example:15012').target, 'control.example:15012');
  const list = controlTarget('10.0.0.5:15012, 10.0.0.6:15012');
  t.is(list.target, 'ipv4:10.0.0.5:15012,10.0.0.6:15012');
  t.is(list.channelOptions['grpc.ssl_target_name_override'], CONTROL_SERVER_NAME);
  t.regex(String(list.channelOptions['grpc.service_config']), /"shuffleAddressList":true/);
  t.is(controlTarget('[fd00::1]:15012,[fd00::2]:15012').target, 'ipv6:[fd00::1]:15012,[fd00::2]:15012');
  t.throws(() => controlTarget('10.0.0.5:15012,control.example:15012'), { code: 'NM_ERR_CONTROL', message: /"control\.example:15012" in a list of replicas must be an IP address with a port/ });
  t.throws(() => controlTarget('10.0.0.5:15012,[fd00::1]:15012'), { message: /must all be IPv4 or all IPv6/ });
  t.throws(() => controlTarget(' , '), { message: /expected host:port/ });
});
