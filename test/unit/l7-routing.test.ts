// The L7 engine's routing on loopback (test/helpers/l7-harness.ts): real HTTP/1.1 and HTTP/2
// clients and backends, the engine between them exactly as the outbound proxy hands it a
// captured connection. Per-request balancing on one keep-alive connection, weighted splits
// and a config swap that moves new requests at once without dropping the one in flight,
// matches, rewrites, redirects, direct responses, header operations, faults, mirroring,
// consistent hashing, and Istio's request metrics.
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import http2 from 'node:http2';
import { requestsTotal } from '../../agent/telemetry/metrics.js';
import { bodyOf, harness, Harness, request, snapshot, startBackend, type Backend, type SnapshotOptions } from '../helpers/l7-harness.js';
import { eventually } from '../helpers/eventually.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { dest, destinationRule, match, policy, route, sm, table } from '../helpers/routing-builders.js';
import type { RoutingConfig } from '../../control/api/snapshot-routing.js';

/** A backend that answers with its name, the path and the headers it got, as JSON. */
function echo(name: string, delayMs = 0): Promise<Backend> {
  return startBackend({
    name,
    handler: async (req, res) => {
      const reply = JSON.stringify({ pod: name, path: req.url, headers: req.headers, body: await bodyOf(req) });
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name }).end(reply), delayMs);
    },
  });
}

/** One client connection at a time: balancing per request shows on one keep-alive connection. */
const withHarness = (t: ExecutionContext, backends: Backend[], routing: RoutingConfig, opts: SnapshotOptions = {}) =>
  harness(t, backends, routing, opts, { maxSockets: 1 });

const labels = { v1: { version: 'v1' }, v2: { version: 'v2' } };
const subsets = [
  { name: 'v1', labels: { version: 'v1' } },
  { name: 'v2', labels: { version: 'v2' } },
];

test('requests on one keep-alive connection are balanced one by one over the endpoints', async (t) => {
  const a = await echo('a');
  const b = await echo('b');
  const { h, agent } = await withHarness(t, [a, b], { routes: [], destinations: [] });
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) seen.add(JSON.parse((await request(`${h.url}/x`, agent)).body).pod);
  t.deepEqual([...seen].sort(), ['a', 'b']);
  t.is(h.l7.http1.listenerCount('request'), 1);
  t.is(a.count + b.count, 20);
});

test('a 90/10 split lands within tolerance; after a switch to 0/100 every new request goes to v2 and the one in flight completes', async (t) => {
  const v1 = await echo('v1', 0);
  const v2 = await echo('v2');
  const split = (w1: number, w2: number): RoutingConfig => ({
    routes: [table([route({ destinations: [dest('v1', w1), dest('v2', w2)] })])],
    destinations: [destinationRule(policy(), subsets)],
  });
  const { h, agent } = await withHarness(t, [v1, v2], split(90, 10), { labels });
  const n = 1000;
  let toV2 = 0;
  for (let i = 0; i < n; i++) if (JSON.parse((await request(`${h.url}/`, agent)).body).pod === 'v2') toV2++;
  const sd = Math.sqrt(n * 0.1 * 0.9);
  t.true(Math.abs(toV2 - 100) < 5 * sd, `v2 got ${toV2} of ${n}`);

  // a request to v1 starts under the old config, and v1 holds it...
  let held: http.ServerResponse | undefined;
  const slow = await startBackend({ name: 'v1', handler: (_req, res) => (held = res) });
  t.teardown(() => (held?.destroy(), slow.server.close()));
  h.update(snapshot([slow, v2], split(100, 0), { labels }));
  const other = new http.Agent({ keepAlive: true });
  t.teardown(() => other.destroy());
  const inFlight = request(`${h.url}/slow`, other);
  await eventually(() => held, 10_000, 'the request at v1');
  // ...then the config says 0/100: every new request goes to v2
  h.update(snapshot([slow, v2], split(0, 100), { labels }));
  for (let i = 0; i < 50; i++) t.is(JSON.parse((await request(`${h.url}/`, agent)).body).pod, 'v2');
  held!.end(JSON.stringify({ pod: 'v1-slow' }));
  const old = await inFlight;
  t.is(old.status, 200, 'the request in flight was not dropped');
  t.is(JSON.parse(old.body).pod, 'v1-slow');
});

test('first matching route wins; match on headers, method, query; Gateway API tables answer 404 NR when nothing matches', async (t) => {
  const v1 = await echo('v1');
  const v2 = await echo('v2');
  const routing: RoutingConfig = {
    routes: [
      table(
        [
          route({ name: 'jason', match: [match({ headers: [{ name: 'end-user', match: sm('exact', 'jason') }] })], destinations: [dest('v2')] }),
          route({ name: 'post', match: [match({ method: sm('exact', 'POST'), uri: sm('pathPrefix', '/api') })], destinations: [dest('v2')] }),
          route({ name: 'canary', match: [match({ queryParams: [{ name: 'canary', match: sm('exact', '1') }] })], destinations: [dest('v2')] }),
          route({ name: 'api', match: [match({ uri: sm('pathPrefix', '/api') })], destinations: [dest('v1')] }),
        ],
        { noMatch: 'notFound', source: 'HTTPRoute shop/web' },
      ),
    ],
    destinations: [destinationRule(policy(), subsets)],
  };
  const { h, agent } = await withHarness(t, [v1, v2], routing, { labels });
  const pod = async (path: string, opts: Parameters<typeof request>[2] = {}) => {
    const r = await request(`${h.url}${path}`, agent, opts);
    return r.status === 200 ? JSON.parse(r.body).pod : r.status;
  };
  t.is(await pod('/api/items'), 'v1');
  t.is(await pod('/api/items', { headers: { 'end-user': 'jason' } }), 'v2');
  t.is(await pod('/api/items', { method: 'POST', body: 'x' }), 'v2');
  t.is(await pod('/api/items?canary=1'), 'v2');
  t.is(await pod('/apix'), 404, 'PathPrefix /api does not match /apix; Gateway API answers 404');
  const nr = await request(`${h.url}/other`, agent);
  t.is(nr.status, 404);
});

test('rewrites, redirects, direct responses and header operations', async (t) => {
  const v1 = await echo('v1');
  const ops = (set: Record<string, string>, add: Record<string, string>, remove: string[]) => ({ set, add, remove });
  const routing: RoutingConfig = {
    routes: [
      table([
        route({
          name: 'rewrite',
          match: [match({ uri: sm('prefix', '/old/') })],
          rewrite: { uri: '/new/', replacePrefixMatch: '', replaceFullPath: '', authority: 'web-v2' },
          headers: { request: ops({ 'x-set': 'yes' }, { 'x-added': 'a' }, ['x-secret']), response: ops({ 'x-resp': 'set' }, {}, ['x-backend']) },
        }),
        route({
          name: 'redirect',
          match: [match({ uri: sm('exact', '/moved') })],
          destinations: [],
          redirect: { uri: '/here', replacePrefixMatch: '', authority: 'elsewhere', scheme: '', port: 0, status: 301 },
        }),
        route({ name: 'direct', match: [match({ uri: sm('exact', '/ping') })], destinations: [], directResponse: { status: 200, body: 'pong' } }),
      ]),
    ],
    destinations: [],
  };
  const { h, agent } = await withHarness(t, [v1], routing);
  const r = await request(`${h.url}/old/thing?q=1`, agent, { headers: { 'x-secret': 's', 'x-set': 'no' } });
  const got = JSON.parse(r.body);
  t.is(got.path, '/new/thing?q=1', 'the matched prefix is replaced, the query kept');
  t.is(got.headers.host, 'web-v2');
  t.is(got.headers['x-set'], 'yes');
  t.is(got.headers['x-added'], 'a');
  t.is(got.headers['x-secret'], undefined);
  t.is(r.headers['x-resp'], 'set');
  t.is(r.headers['x-backend'], undefined);
  const moved = await request(`${h.url}/moved?a=b`, agent);
  t.is(moved.status, 301);
  t.is(moved.headers.location, 'http://elsewhere/here?a=b');
  const ping = await request(`${h.url}/ping`, agent);
  t.is(ping.status, 200);
  t.is(ping.body, 'pong');
  t.is(v1.count, 1, 'redirects and direct responses never reach a backend');
});

test('fault injection: abort answers without reaching the backend (FI); delay holds the request first', async (t) => {
  const v1 = await echo('v1');
  const routing: RoutingConfig = {
    routes: [
      table([
        route({ name: 'abort', match: [match({ uri: sm('prefix', '/abort') })], fault: { abort: { httpStatus: 418, grpcStatus: '', percentage: 100 } } }),
        route({ name: 'delay', match: [match({ uri: sm('prefix', '/delay') })], fault: { delay: { fixedDelayMs: 200, percentage: 100 } } }),
      ]),
    ],
    destinations: [],
  };
  const { h, agent } = await withHarness(t, [v1], routing);
  const before = await flagCount('FI');
  t.is((await request(`${h.url}/abort`, agent)).status, 418);
  t.is(v1.count, 0);
  t.is((await flagCount('FI')) - before, 1);
  const d = await request(`${h.url}/delay`, agent);
  t.is(d.status, 200);
  t.true(d.ms >= 190, `answered after ${d.ms} ms`);
  t.is(v1.count, 1);
});

test('mirroring sends a copy with a -shadow authority; the client only sees the real answer', async (t) => {
  const v1 = await echo('v1');
  let shadowSeen: { host?: string; body: string } | undefined;
  const shadow = await startBackend({
    name: 'shadow',
    handler: async (req, res) => {
      shadowSeen = { host: req.headers.host, body: await bodyOf(req) };
      res.writeHead(500).end('ignored');
    },
  });
  const routing: RoutingConfig = {
    routes: [table([route({ mirrors: [{ destination: dest('', 100, { host: 'shadow.shop.svc.cluster.local' }), percentage: 100 }] })])],
    destinations: [],
  };
  const { h, agent } = await withHarness(t, [v1], routing, { services: [{ name: 'shadow', backends: [shadow] }] });
  const r = await request(`${h.url}/copy`, agent, { method: 'POST', body: 'payload', headers: { host: 'web.shop' } });
  t.is(r.status, 200);
  t.deepEqual(await eventually(() => shadowSeen, 10_000, 'the mirrored copy'), { host: 'web.shop-shadow', body: 'payload' });
});

test('consistent hashing on a header keeps each user on one endpoint and spreads the users over all of them', async (t) => {
  const backends = await Promise.all(['a', 'b', 'c'].map((n) => echo(n)));
  const routing: RoutingConfig = {
    routes: [],
    destinations: [destinationRule(policy({ loadBalancer: { simple: 'LEAST_REQUEST', consistentHash: { kind: 'header', name: 'x-user', cookiePath: '', cookieTtlMs: 0 } } }))],
  };
  const { h, agent } = await withHarness(t, backends, routing);
  const pod = async (user: string) => JSON.parse((await request(`${h.url}/`, agent, { headers: { 'x-user': user } })).body).pod as string;
  const usersOf = new Map<string, number>();
  for (let u = 0; u < 90; u++) {
    const user = `user-${u}`;
    const first = await pod(user);
    for (let i = 0; i < 2; i++) t.is(await pod(user), first, `${user} moved`);
    usersOf.set(first, (usersOf.get(first) ?? 0) + 1);
  }
  // 30 users per endpoint expected (the ring's points depend on the backends' ports, so the
  // split varies from run to run): every endpoint gets a share, none most of them
  t.deepEqual([...usersOf.keys()].sort(), ['a', 'b', 'c']);
  for (const [p, n] of usersOf) t.true(n >= 10 && n <= 55, `endpoint ${p} got ${n} of 90 users: ${JSON.stringify([...usersOf])}`);
});

test('HTTP/2 prior knowledge: requests and bodies go through, one stream each', async (t) => {
  const v1 = await startBackend({
    name: 'h2',
    h2: true,
    handler: async (req, res) => {
      const body = await bodyOf(req);
      res.writeHead(200, { 'x-proto': req.httpVersion }).end(`${req.method} ${req.url} ${body}`);
    },
  });
  const h = await new Harness(snapshot([v1], { routes: [], destinations: [] }, { portName: 'http2' }), 'sniff').listen();
  const client = http2.connect(h.url);
  const sessionErrors: Error[] = [];
  client.on('error', (err) => sessionErrors.push(err));
  // the client goes first and the harness only once it closed: a harness closed under a live
  // session resets it (its GOAWAY unread), an ECONNRESET on a loaded machine
  t.teardown(async () => {
    await new Promise<void>((resolve) => client.close(resolve));
    await h.close();
    v1.server.close();
  });
  const call = (path: string, body?: string) =>
    new Promise<{ status: number; proto: string; body: string }>((resolve, reject) => {
      const s = client.request({ ':method': body ? 'POST' : 'GET', ':path': path }, { endStream: !body });
      let out = '';
      let head: http2.IncomingHttpHeaders = {};
      s.on('response', (hd) => (head = hd));
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.on('end', () => resolve({ status: Number(head[':status']), proto: String(head['x-proto']), body: out }));
      s.on('error', reject);
      if (body) s.end(body);
    });
  const results = await Promise.all([call('/a'), call('/b', 'hello'), call('/c')]);
  t.deepEqual(
    results.map((r) => [r.status, r.proto, r.body]),
    [
      [200, '2.0', 'GET /a '],
      [200, '2.0', 'POST /b hello'],
      [200, '2.0', 'GET /c '],
    ],
  );
  t.deepEqual(sessionErrors, [], 'the session carried them without an error');
});

async function flagCount(flag: string): Promise<number> {
  const m = await requestsTotal.get();
  return m.values.filter((v) => String(v.labels.response_flags).split(',').includes(flag)).reduce((a, v) => a + v.value, 0);
}

test("istio_requests_total counts each request once with Istio's labels", async (t) => {
  const v1 = await echo('counted'); // a name no other test uses: they run at the same time
  const { h, agent } = await withHarness(t, [v1], { routes: [], destinations: [] });
  const count = async () =>
    (await requestsTotal.get()).values
      .filter((v) => v.labels.destination_workload === 'counted' && v.labels.source_workload === 'client' && v.labels.response_code === '200' && v.labels.reporter === 'source')
      .reduce((a, v) => a + v.value, 0);
  const before = await count();
  for (let i = 0; i < 5; i++) await request(`${h.url}/`, agent);
  t.is((await count()) - before, 5);
  const sample = (await requestsTotal.get()).values.find((v) => v.labels.destination_workload === 'counted')!;
  t.like(sample.labels, {
    destination_service: 'web.shop.svc.cluster.local',
    destination_service_name: 'web',
    destination_service_namespace: 'shop',
    request_protocol: 'http',
    response_flags: '-',
    grpc_response_status: '-',
  });
});

test('a GAMMA consumer route applies to callers in its namespace only, and wins over the producer route for them', async (t) => {
  const v1 = await echo('v1');
  const v2 = await echo('v2');
  const routing: RoutingConfig = {
    routes: [
      table([route({ destinations: [dest('v1')] })], { source: 'HTTPRoute shop/web' }),
      table([route({ destinations: [dest('v2')] })], { consumerNamespace: 'frontend', source: 'HTTPRoute frontend/web' }),
    ],
    destinations: [destinationRule(policy(), subsets)],
  };
  const clients = [
    { name: 'shop-client', ip: '127.0.0.5' },
    { name: 'fe-client', ip: '127.0.0.6', namespace: 'frontend' },
  ];
  const { h, agent } = await withHarness(t, [v1, v2], routing, { labels, clients });
  const from = async (ip: string) => JSON.parse((await request(`${h.url}/`, agent, { localAddress: ip })).body).pod;
  const fe = new http.Agent({ keepAlive: true });
  t.teardown(() => fe.destroy());
  t.is(await from('127.0.0.5'), 'v1', 'the producer route for callers elsewhere');
  t.is(JSON.parse((await request(`${h.url}/`, fe, { localAddress: '127.0.0.6' })).body).pod, 'v2', 'the consumer route for its own namespace');
});

test('PEAK_EWMA sends most requests to the endpoint that answers faster, by the latency the engine measures', async (t) => {
  // the engine measures latency with its clock; each backend moves that clock by its own
  // latency before it answers, so what the engine measures is exactly 2 or 40 ms however
  // loaded the machine is (the balancer's arithmetic on a simulated closed loop with many
  // callers is load-balancer.test.ts's)
  const clock = new FakeClock(0);
  const latencyBackend = (name: string, ms: number) =>
    startBackend({
      name,
      handler: (_req, res) => {
        clock.advance(ms);
        res.writeHead(200, { 'x-backend': name }).end(JSON.stringify({ pod: name }));
      },
    });
  const fast = await latencyBackend('fast', 2);
  const slow = await latencyBackend('slow', 40);
  const routing: RoutingConfig = { routes: [], destinations: [destinationRule(policy({ loadBalancer: { simple: 'PEAK_EWMA' } }))] };
  const { h, agent } = await harness(t, [fast, slow], routing, { clock }, { maxSockets: 1 });
  for (let i = 0; i < 100; i++) await request(`${h.url}/`, agent);
  t.true(fast.count >= 90, `fast ${fast.count}, slow ${slow.count}`);
  t.true(slow.count >= 1, 'the slow one was tried: its latency was measured, not assumed');
});
