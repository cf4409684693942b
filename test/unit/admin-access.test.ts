// The agent's admin port is not open to pods: "any pod can read its node's admin port:
// /debug/state … and a live /debug/tap of every meshed connection". The real admin server
// on 127.0.0.1, clients on other loopback addresses standing for the node (127.0.0.2), a
// trusted network (127.0.0.3) and a pod (127.0.0.4); and the passthrough guard's decisions.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startAdminServer, type AdminServer } from '../../agent/admin/admin-server.js';
import { NodeAddresses, PassthroughGuard } from '../../agent/proxy/passthrough-guard.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import { adminRefused } from '../../agent/telemetry/metrics.js';
import { connectionChannel } from '../../agent/telemetry/tap.js';
import { fullSnapshot } from '../helpers/snapshot-fixture.js';
import { eventually } from '../helpers/eventually.js';

const NODE = '127.0.0.2';
const TRUSTED = '127.0.0.3';
const POD = '127.0.0.4';
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

interface World {
  admin: AdminServer;
  port: number;
  dir: string;
  get(from: string, p: string, token?: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>;
}

async function world(t: ExecutionContext, tokens = true): Promise<World> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nm-admin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'admin-token'), `${ADMIN_TOKEN}\n`);
  await writeFile(path.join(dir, 'metrics-token'), METRICS_TOKEN);
  const admin = await startAdminServer(
    '127.0.0.1',
    0,
    { notReady: () => undefined, debug: () => ({ node: 'node-a', enrolled: [{ netns: '/run/netns/secret' }] }) },
    {
      isNode: (ip) => ip === NODE,
      trustedNetworks: [`${TRUSTED}/32`],
      ...(tokens ? { adminTokenFile: path.join(dir, 'admin-token'), metricsTokenFile: path.join(dir, 'metrics-token') } : {}),
    },
  );
  t.teardown(() => admin.close());
  const port = Number(admin.addresses[0]!.split(':').pop());
  return {
    admin,
    port,
    dir,
    get: (from, p, token) =>
      new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: p, localAddress: from, agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          // a tap never ends: its headers and first bytes are enough
          if (p === '/debug/tap' && res.statusCode === 200) {
            res.destroy();
            resolve({ status: 200, body: '', headers: res.headers });
            return;
          }
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        });
        req.on('error', reject);
      }),
  };
}

async function refusedCount(reason: string): Promise<number> {
  return (await adminRefused.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

test('a pod reads nothing of the admin port: /debug/state, /debug/tap, /metrics and readiness answer 401 with what to do', async (t) => {
  const w = await world(t, false);
  const before = await refusedCount('no_credential');
  for (const p of ['/debug/state', '/debug/tap', '/metrics', '/healthz/ready']) {
    const r = await w.get(POD, p);
    t.is(r.status, 401, p);
    t.is(r.headers['www-authenticate'], 'Bearer realm="nodemesh-agent"');
    t.regex(r.body, /only the node itself may use the admin port/);
    t.notRegex(r.body, /secret/);
  }
  t.is((await refusedCount('no_credential')) - before, 4, 'each refusal counted');
});

test('the node itself and a trusted network use everything', async (t) => {
  const w = await world(t);
  for (const from of [NODE, TRUSTED]) {
    t.is((await w.get(from, '/healthz/ready')).status, 200, from);
    t.is((await w.get(from, '/healthz/live')).status, 200, from);
    t.is((await w.get(from, '/metrics')).status, 200, from);
    const state = await w.get(from, '/debug/state');
    t.is(state.status, 200, from);
    t.regex(state.body, /\/run\/netns\/secret/);
    t.is((await w.get(from, '/debug/tap')).status, 200, from);
  }
});

test('Prometheus with the metrics token reads /metrics and readiness, not /debug; the admin token reads everything; a wrong token nothing', async (t) => {
  const w = await world(t);
  t.is((await w.get(POD, '/metrics', METRICS_TOKEN)).status, 200);
  t.is((await w.get(POD, '/healthz/ready', METRICS_TOKEN)).status, 200);
  const debug = await w.get(POD, '/debug/state', METRICS_TOKEN);
  t.is(debug.status, 403);
  t.regex(debug.body, /the metrics token reads \/metrics and \/healthz\/ready only/);
  t.is((await w.get(POD, '/debug/tap', METRICS_TOKEN)).status, 403);
  t.is((await w.get(POD, '/debug/state', ADMIN_TOKEN)).status, 200);
  t.is((await w.get(POD, '/debug/tap', ADMIN_TOKEN)).status, 200);
  const wrong = await w.get(POD, '/metrics', `${METRICS_TOKEN}x`);
  t.is(wrong.status, 401);
  t.regex(wrong.body, /the token is not one this agent accepts/);
});

test('a rotated token file takes effect without a restart', async (t) => {
  const w = await world(t);
  const next = 'rotated-admin-token-fedcba9876543210';
  await writeFile(path.join(w.dir, 'admin-token'), next);
  await eventually(async () => (await w.get(POD, '/debug/state', next)).status === 200, 20_000, 'the new token to be accepted');
  t.is((await w.get(POD, '/debug/state', ADMIN_TOKEN)).status, 401, 'the old one no longer is');
});

test('a token file with a token too short to be a credential stops the agent at start, naming the file', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nm-admin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'weak'), 'secret');
  await t.throwsAsync(startAdminServer('127.0.0.1', 0, { notReady: () => undefined, debug: () => ({}) }, { isNode: () => false, adminTokenFile: path.join(dir, 'weak') }), {
    code: 'NM_ERR_ADMIN',
    message: /weak: the token has 6 characters; use at least 16/,
  });
  await t.throwsAsync(startAdminServer('127.0.0.1', 0, { notReady: () => undefined, debug: () => ({}) }, { isNode: () => false, adminTokenFile: path.join(dir, 'missing') }), {
    code: 'NM_ERR_ADMIN',
    message: /missing: ENOENT/,
  });
});

test('pods cannot exhaust the agent through its admin port: idle connections past 32 are closed at once, slow headers within 5 s; the node is still served', async (t) => {
  const w = await world(t);
  const refusedBefore = await refusedCount('connections');
  const sockets: net.Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  const closed: number[] = [];
  const opened = performance.now();
  for (let i = 0; i < 40; i++) {
    const s = net.connect({ host: '127.0.0.1', port: w.port, localAddress: POD });
    s.on('error', () => {});
    s.resume(); // the 408 the server answers before it closes is read and dropped
    s.on('close', () => closed.push(performance.now() - opened));
    s.write('GET /debug/state HTTP/1.1\r\nHost: x\r\n'); // never finished
    sockets.push(s);
  }
  // "at once" as an order, not a time (other tests of this file load the same process): the
  // 8 past the limit are refused and closed while every admitted one is still open, and the
  // admitted ones only go at their headers timeout (a timer never fires early)
  await eventually(async () => (await refusedCount('connections')) - refusedBefore >= 8, 30_000, 'the connections past the limit to be refused');
  await eventually(() => closed.length >= 8, 30_000, 'the connections past the limit to be closed');
  t.is((await refusedCount('connections')) - refusedBefore, 8, 'exactly the connections past 32 refused');
  t.is((await w.get(NODE, '/debug/state')).status, 200, 'the node is served meanwhile');
  await eventually(() => closed.length === 40, 30_000, 'the slow connections to be cut by the headers timeout');
  t.true(closed.slice(8).every((ms) => ms >= 4_000), `the 32 admitted ones lived until their headers timeout (closed after ${closed.map(Math.round).join(', ')} ms)`);
});

test('a tap reader slower than the node loses events instead of growing the agent\'s memory, and is told how many', async (t) => {
  const w = await world(t);
  const sock = net.connect({ host: '127.0.0.1', port: w.port, localAddress: NODE });
  t.teardown(() => sock.destroy());
  sock.write('GET /debug/tap HTTP/1.1\r\nHost: x\r\n\r\n');
  await eventually(() => connectionChannel.hasSubscribers, 20_000, 'the tap to subscribe');
  sock.pause(); // reads nothing: the server's buffer fills
  const event = { event: 'open', time: new Date().toISOString(), source: '10.0.0.1:1234', sourceWorkload: 'a/b', originalDestination: '10.96.0.1:80', service: 'x'.repeat(1000), upstream: '', responseFlags: '-', receivedBytes: 0, sentBytes: 0, durationMs: 0 };
  for (let i = 0; i < 20_000; i++) connectionChannel.publish(event); // ~20 MB of events
  let text = '';
  sock.setEncoding('utf8');
  sock.on('data', (c: string) => (text += c));
  sock.resume();
  // the next event written once the buffer has drained is preceded by the count
  await eventually(() => {
    connectionChannel.publish(event);
    return /"event":"dropped"[^\n]*"count":\d+/.test(text);
  }, 10_000, 'the dropped-events line');
  const count = Number(/"event":"dropped"[^\n]*"count":(\d+)/.exec(text)![1]);
  t.true(count > 10_000, `${count} events dropped of 20,000 (at most ~1 MiB of them kept)`);
});

test('the passthrough guard refuses "this host", this node\'s and other nodes\' agent ports, and the control plane\'s ports; nothing else', (t) => {
  const node = new NodeAddresses(() => ({ eth0: [{ address: '172.31.240.10', netmask: '255.255.255.0', family: 'IPv4', mac: '', internal: false, cidr: '172.31.240.10/24' }] }));
  const guard = new PassthroughGuard(node);
  guard.configure({ agentPorts: [15099], control: '172.31.240.1:15012' });
  const snap = fullSnapshot();
  const other = snap.nodes?.find((n) => n.ip)?.ip;
  const state = new ProxyState(snap);
  t.is(guard.reason('0.0.0.0', 15020), 'this host');
  t.is(guard.reason('0.0.0.0', 8080), 'this host');
  t.is(guard.reason('127.0.0.1', 22), 'this host');
  t.is(guard.reason('172.31.240.10', 15020), "a port of this node's agent");
  t.is(guard.reason('::ffff:172.31.240.10', 15008), "a port of this node's agent");
  t.is(guard.reason('172.31.240.10', 15099), "a port of this node's agent", 'a port the agent was given');
  t.is(guard.reason('172.31.240.10', 53), undefined, 'other ports of the node stay reachable (a node-local DNS cache)');
  t.is(guard.reason('172.31.240.1', 15012), 'a port of the control plane');
  t.is(guard.reason('172.31.240.1', 15014), 'a port of the control plane');
  t.is(guard.reason('172.31.240.1', 443), undefined);
  t.is(guard.reason('10.244.1.5', 15020), undefined, 'a pod that happens to use 15020');
  if (other) t.is(guard.reason(other, 15020, state), 'a port of a node agent');
  else t.fail('the fixture snapshot has a node with an address');
});
