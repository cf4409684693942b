// A policy that arrives while inbound connections are open applies to them, as ztunnel's
// policy watcher does (agent/proxy/authorized-connections.ts): an open connection the new
// policy denies is closed and counted, one it still allows keeps working, and requests on
// a parsed connection are authorized against the policy in force when they arrive. Real
// sockets on loopback: node-b's real HBONE server (TLS 1.3, HTTP/2) with the HBONE
// connector, and the plaintext capture's shape (test/helpers/inbound-listener.ts). No root.
import test from 'ava';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { SecurityIndex } from '../../agent/policy/authorization.js';
import { AuthorizedConnections } from '../../agent/proxy/authorized-connections.js';
import { authorizationPolicy, compileYaml, peerAuthentication, podYaml } from '../helpers/config-yaml.js';
import { eventually } from '../helpers/eventually.js';
import { createPki, flagOf, req, world, type Pki } from '../helpers/hbone-world.js';
import { echoPod, inbound, listenLoopback, PLAINTEXT, rawExchange } from '../helpers/inbound-listener.js';
import { metricValue } from '../helpers/metrics.js';

const CLOSED = 'nodemesh_agent_connections_closed_by_policy_total';

let pki: Pki;
test.before(async () => {
  pki = await createPki();
});

/** Writes `msg` and resolves the next chunk that comes back (the pods echo). */
function roundTrip(s: Duplex, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    s.once('data', (d: Buffer) => resolve(d.toString()));
    s.once('error', reject);
    s.write(msg);
  });
}

const closed = (s: Duplex) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

test('HBONE: a DENY applied while tunnels are open closes the denied principal’s tunnel (counted) and keeps the other’s', async (t) => {
  const webPod = podYaml('web', { ns: 'shop', labels: { app: 'web' }, sa: 'web', node: 'node-b' });
  let security = SecurityIndex.of(compileYaml([webPod]).security);
  const connections = new AuthorizedConnections();
  const w = await world(t, pki, { security: () => security, connections });
  const denied = await w.connector.connect(req(w.client, w.web, w.webPort));
  const kept = await w.connector.connect(req(w.client2, w.web, w.webPort));
  for (const s of [denied, kept]) {
    s.on('error', () => {});
    t.teardown(() => s.destroy());
  }
  t.is(await roundTrip(denied, 'a'), 'echo:a');
  t.is(await roundTrip(kept, 'b'), 'echo:b');
  await eventually(() => connections.size === 2, 10_000, 'both tunnels to be registered');

  const labels = { reason: 'deny_policy', policy: 'shop/pl-no-client' };
  const before = await metricValue(CLOSED, labels);
  security = SecurityIndex.of(
    compileYaml([
      webPod,
      authorizationPolicy('shop', 'pl-no-client', {
        selector: { matchLabels: { app: 'web' } },
        action: 'DENY',
        rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/client'] } }] }],
      }),
    ]).security,
  );
  t.is(connections.reauthorize(security), 1, 'one open connection is now denied');
  await closed(denied);
  t.is((await metricValue(CLOSED, labels)) - before, 1);
  t.is(connections.size, 1);
  t.is(await roundTrip(kept, 'c'), 'echo:c', 'the principal the DENY does not name keeps its tunnel');
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, w.webPort))), 'DENY', 'a new tunnel of the denied principal is refused');
  kept.destroy();
  await eventually(() => connections.size === 0, 10_000, 'closed tunnels to leave the registry');
});

test('plaintext: a PeerAuthentication STRICT applied while a connection is open resets it (counted); ALLOW that still admits keeps one', async (t) => {
  const port = await echoPod(t);
  const ib = await inbound(t, [], port, PLAINTEXT);
  const s = net.connect({ host: '127.0.0.1', port: ib.port });
  s.on('error', () => {});
  t.teardown(() => s.destroy());
  t.is(await roundTrip(s, 'x'), 'x');
  await eventually(() => ib.authorized.size === 1, 10_000, 'the connection to be registered');

  // an ALLOW that still admits plaintext from 127.0.0.1: nothing changes for it
  const fromLoopback = authorizationPolicy('shop', 'pl-loopback', {
    selector: { matchLabels: { app: 'server' } },
    rules: [{ from: [{ source: { ipBlocks: ['127.0.0.0/8'] } }] }],
  });
  t.is(ib.apply([fromLoopback]), 0);
  t.is(await roundTrip(s, 'y'), 'y', 'still open');

  const labels = { reason: 'mtls_strict', policy: 'shop/pl-strict' };
  const before = await metricValue(CLOSED, labels);
  const reset = new Promise<string | undefined>((resolve) => s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code)));
  t.is(ib.apply([fromLoopback, peerAuthentication('shop', 'pl-strict', { mtls: { mode: 'STRICT' } })]), 1);
  t.is(await reset, 'ECONNRESET', 'the client sees a reset');
  t.is((await metricValue(CLOSED, labels)) - before, 1);
  await eventually(() => ib.authorized.size === 0, 10_000, 'the closed connection to leave the registry');
  t.is((await rawExchange(ib.port, 'z')).closedBy, 'reset', 'a new plaintext connection is refused');
});

test('an ALLOW that no longer admits the peer closes its open connection with no_allow_match', async (t) => {
  const port = await echoPod(t);
  const ib = await inbound(t, [], port, PLAINTEXT);
  const s = net.connect({ host: '127.0.0.1', port: ib.port });
  s.on('error', () => {});
  t.teardown(() => s.destroy());
  t.is(await roundTrip(s, 'x'), 'x');
  await eventually(() => ib.authorized.size === 1, 10_000, 'the connection to be registered');
  const labels = { reason: 'no_allow_match', policy: '-' };
  const before = await metricValue(CLOSED, labels);
  const onlyElsewhere = authorizationPolicy('shop', 'pl-elsewhere', {
    selector: { matchLabels: { app: 'server' } },
    rules: [{ from: [{ source: { ipBlocks: ['192.0.2.0/24'] } }] }],
  });
  t.is(ib.apply([onlyElsewhere]), 1);
  await closed(s);
  t.is((await metricValue(CLOSED, labels)) - before, 1);
});

test('L7: requests on a kept-alive connection meet the policy applied after it opened; the connection stays open', async (t) => {
  let accepted = 0;
  const pod = http.createServer((rq, rs) => rs.end(`ok ${rq.url}`));
  pod.on('connection', () => accepted++);
  const port = await listenLoopback(t, pod);
  // an HTTP rule from the start: the stream is parsed and every request authorized
  const denyAdmin = authorizationPolicy('shop', 'pl-no-admin', {
    selector: { matchLabels: { app: 'server' } },
    action: 'DENY',
    rules: [{ to: [{ operation: { paths: ['/admin'] } }] }],
  });
  const ib = await inbound(t, [denyAdmin], port, PLAINTEXT);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const get = (path: string) =>
    new Promise<{ status: number; body: string; reused: boolean }>((resolve, reject) => {
      const r = http.get({ host: '127.0.0.1', port: ib.port, path, agent }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: r.reusedSocket }));
      });
      r.on('error', reject);
    });
  t.like(await get('/reports'), { status: 200, body: 'ok /reports' });
  t.like(await get('/admin'), { status: 403 });

  // DENY /reports too, and nothing of /admin any more: no connection is closed, each request sees it
  const denyReports = authorizationPolicy('shop', 'pl-no-reports', {
    selector: { matchLabels: { app: 'server' } },
    action: 'DENY',
    rules: [{ to: [{ operation: { paths: ['/reports'] } }] }],
  });
  t.is(ib.apply([denyReports]), 0, 'a DENY of HTTP attributes leaves the connection to per-request checks');
  t.like(await get('/reports'), { status: 403, body: 'RBAC: access denied', reused: true });
  t.like(await get('/admin'), { status: 200, body: 'ok /admin', reused: true });
  t.is(ib.authorized.size, 1, 'one inbound connection throughout');
  t.is(accepted, 1, 'the pod saw one connection');
});
