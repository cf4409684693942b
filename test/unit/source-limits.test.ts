// The bound per source pod on what it holds of the node proxy (agent/transport/
// source-limits.ts), through the whole outbound proxy on loopback: past its connections a
// pod's new connection is reset as it is accepted, past its requests in flight a request is
// answered 503 UO with x-envoy-overloaded; both refusals are counted with their reason; the
// other pods are served all along; and once the pod's clients go, nothing of it is held.
// Sources are pods by their address: 127.0.0.1 (client) and 127.0.0.4 (other).
import test from 'ava';
import http2 from 'node:http2';
import { eventually } from '../helpers/eventually.js';
import { metricValue } from '../helpers/metrics.js';
import { closedByPeer, loopbackProxy, within } from '../helpers/outbound-proxy.js';
import { request, snapshot, startBackend } from '../helpers/l7-harness.js';
import { emptyRouting } from '../../control/api/snapshot-routing.js';
import http from 'node:http';
import net from 'node:net';

const CLIENTS = [
  { name: 'client', ip: '127.0.0.1' },
  { name: 'other', ip: '127.0.0.4' },
];
const refusals = (reason: string) => metricValue('nodemesh_agent_proxy_errors_total', { reason });

test.serial('a pod past its connections is reset at accept and counted; another pod is served; freed connections can be used again', async (t) => {
  const b = await startBackend({ name: 'web-1', handler: (_q, s) => s.end('ok') });
  t.teardown(() => b.server.close());
  const lp = await loopbackProxy(t, snapshot([b], emptyRouting(), { clients: CLIENTS }), { limits: { maxConnectionsPerSource: 5 } });
  const before = await refusals('source_connection_limit');
  const held = await Promise.all(Array.from({ length: 5 }, () => lp.connect('127.0.0.1')));
  await eventually(() => lp.proxy.openConnections === 5, 20_000, 'five accepted');
  // reset as it is accepted: the client sees it at connect, or right after
  const sixth = await within(
    lp.connect('127.0.0.1').then(
      (s) => closedByPeer(s).then((r) => r.reset),
      (err: NodeJS.ErrnoException) => err.code === 'ECONNRESET',
    ),
    5000,
  );
  t.true(sixth, 'the sixth connection was reset');
  t.is((await refusals('source_connection_limit')) - before, 1, 'and counted');
  // another pod is not affected
  const agent = new http.Agent({ keepAlive: false });
  t.is((await request(`http://127.0.0.1:${lp.port}/`, agent, { localAddress: '127.0.0.4' })).status, 200);
  // the pod's held connections still work, and once one closes the pod may open another
  const s = held[0]!;
  const answered = closedByPeer(s);
  s.end('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
  t.regex((await within(answered, 5000))?.data ?? '', /^HTTP\/1\.1 200 /, 'answered, then closed after its FIN');
  await eventually(() => lp.proxy.openConnections === 4, 20_000, 'one released');
  t.is((await request(`http://127.0.0.1:${lp.port}/`, agent, { localAddress: '127.0.0.1' })).status, 200);
  for (const h of held) h.destroy();
  await eventually(() => lp.proxy.limits.size === 0, 20_000, 'nothing held for any source once its clients left');
});

test.serial('a pod past its requests in flight gets 503 UO with x-envoy-overloaded, counted; another pod is served; the share is freed after', async (t) => {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const b = await startBackend({ name: 'web-1', h2: true, handler: (q, s) => (q.url === '/slow' ? void gate.then(() => s.end('slow')) : s.end('ok')) });
  t.teardown(() => b.server.close());
  const lp = await loopbackProxy(t, snapshot([b], emptyRouting(), { clients: CLIENTS, portName: 'grpc' }), { limits: { maxRequestsPerSource: 10 } });
  const before = await refusals('source_request_limit');
  // one HTTP/2 connection with 12 streams to a backend that holds them
  const session = http2.connect(`http://127.0.0.1:${lp.port}`);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const ask = (s: http2.ClientHttp2Session, path: string) =>
    new Promise<{ status: number; overloaded: unknown }>((resolve, reject) => {
      const st = s.request({ ':path': path });
      let head: http2.IncomingHttpHeaders = {};
      st.on('response', (h) => (head = h));
      st.on('end', () => resolve({ status: Number(head[':status']), overloaded: head['x-envoy-overloaded'] }));
      st.on('error', reject);
      st.resume();
      st.end();
    });
  const slow = Array.from({ length: 12 }, () => ask(session, '/slow'));
  const refused = await within(Promise.all(slow.slice(10)), 5000);
  t.deepEqual(
    refused?.map((r) => [r.status, r.overloaded]),
    [
      [503, 'true'],
      [503, 'true'],
    ],
    'the two past the bound were refused at once',
  );
  t.is((await refusals('source_request_limit')) - before, 2);
  // another pod, meanwhile
  const other = http2.connect(`http://127.0.0.1:${lp.port}`, { createConnection: () => net.connect({ host: '127.0.0.1', port: lp.port, localAddress: '127.0.0.4' }) });
  other.on('error', () => {});
  t.teardown(() => other.destroy());
  t.is((await ask(other, '/')).status, 200);
  release();
  t.deepEqual(
    (await Promise.all(slow.slice(0, 10))).map((r) => r.status),
    Array(10).fill(200),
  );
  t.is((await ask(session, '/')).status, 200, 'the pod may send again once its requests are done');
  session.destroy();
  other.destroy();
  await eventually(() => lp.proxy.limits.size === 0, 20_000, 'nothing held once the clients left');
});
