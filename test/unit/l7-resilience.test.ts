// The L7 engine's resilience features on loopback (test/helpers/l7-harness.ts), with real
// clients and backends: retries (status, body replay, bounded body), the retry budget,
// per-try and route timeouts, outlier ejection and return, circuit breaking with UO, fairness
// of the pending queue between source workloads, and gRPC retries on UNAVAILABLE with
// grpc-js on both ends.
import test from 'ava';
import http from 'node:http';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { bodyOf, harness, Harness, heldBackend, request, snapshot, startBackend, TunnelConnector, type Backend } from '../helpers/l7-harness.js';
import type { RoutingConfig, TrafficPolicy } from '../../control/api/snapshot-routing.js';
import { rawMethod } from '../helpers/raw-grpc.js';
import { destinationRule, policy, retries, route, table } from '../helpers/routing-builders.js';
import { eventually } from '../helpers/eventually.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** Fails every `every`-th request (1-based count) with `status`. */
function flaky(name: string, every: number, status = 503): Promise<Backend> {
  let n = 0;
  return startBackend({
    name,
    handler: async (req, res) => {
      const body = await bodyOf(req);
      n++;
      if (every > 0 && n % every === 1 % every) res.writeHead(status).end('fail');
      else res.writeHead(200).end(body || 'ok');
    },
  });
}

/** Once every request is answered, the cluster holds nothing: no slot, queue entry or retry leaks. */
async function settled(h: Harness): Promise<{ active: number; pending: number; retriesInFlight: number }[]> {
  type C = { active: number; pending: number; retriesInFlight: number };
  const counts = () => (h.l7.debug().clusters as C[]).map(({ active, pending, retriesInFlight }) => ({ active, pending, retriesInFlight }));
  // the last response can reach the client a moment before its slot is handed back
  await eventually(() => counts().every((c) => c.active + c.pending + c.retriesInFlight === 0), 10_000, 'the cluster to hold nothing').catch(() => {});
  return counts();
}

test('one request in three answered 503: with attempts 3 on 5xx every client request succeeds', async (t) => {
  const b = await flaky('flaky', 3);
  const routing = { routes: [table([route({ retries: retries({ attempts: 3, retryOn: ['5xx'] }) })])], destinations: [] };
  const { h, agent } = await harness(t, [b], routing);
  const replies = [];
  for (let i = 0; i < 300; i++) replies.push(await request(`${h.url}/`, agent));
  t.deepEqual(
    replies.filter((r) => r.status !== 200).map((r) => r.status),
    [],
  );
  t.true(b.count >= 400 && b.count <= 460, `the backend saw ${b.count} requests for 300 (a third retried)`);
});

test('a retry replays the request body; a body past the replay bound is never retried', async (t) => {
  const b = await flaky('body', 2);
  const routing = { routes: [table([route({ retries: retries({ attempts: 2, retryOn: ['5xx'] }) })])], destinations: [] };
  const { h, agent } = await harness(t, [b], routing);
  const small = 'x'.repeat(10_000);
  const r = await request(`${h.url}/`, agent, { method: 'POST', body: small });
  t.is(r.status, 200);
  t.is(r.body, small, 'the retry carried the whole body');
  const big = Buffer.alloc(200_000, 'y');
  const seen = b.count;
  const r2 = await request(`${h.url}/`, agent, { method: 'POST', body: big });
  t.is(r2.status, 503, '200 KB exceed the replay bound: the 503 is passed on');
  t.is(b.count - seen, 1);
});

test('the retry budget caps the extra load when every request fails: exactly 20% of the requests plus the floor over its window', async (t) => {
  const b = await flaky('down', 1);
  const routing = {
    routes: [table([route({ retries: retries({ attempts: 3, retryOn: ['5xx'], backoffBaseMs: 1, backoffMaxMs: 2 }) })])],
    destinations: [destinationRule(policy({ retryBudget: { percent: 20, minRetriesPerSecond: 1, ttlMs: 10_000 } }))],
  };
  // the engine's clock stands still: all the requests fall in one window of the budget, however
  // long the loop takes on a loaded machine (expiry is retry-budget.test.ts's business)
  const { h, agent } = await harness(t, [b], routing, { clock: new FakeClock(0) });
  const n = 200;
  const replies = [];
  for (let i = 0; i < n; i++) replies.push(await request(`${h.url}/`, agent));
  t.true(replies.every((r) => r.status === 503));
  // without a budget: 4 tries each = 800; with it: 200 + 20% of 200 + 10 (1/s over 10 s)
  t.is(b.count - n, 0.2 * n + 10, 'retries made');
  t.deepEqual(await settled(h), [{ active: 0, pending: 0, retriesInFlight: 0 }]);
});

test('perTryTimeout cuts each try that never answers and the route timeout the whole request, with 504 UT', async (t) => {
  // the first two tries never answer (until the test ends); later ones answer at once
  const hung: http.ServerResponse[] = [];
  let tries = 0;
  const slow = await startBackend({
    name: 'slow',
    handler: (_req, res) => {
      if (++tries <= 2) hung.push(res);
      else res.end('answered');
    },
  });
  t.teardown(() => hung.forEach((res) => res.destroy()));
  // 500 ms per try: room for a healthy try on a loaded machine; one that took longer is only
  // tried again, and six more tries outlast any stall of a loaded machine
  const perTry = 500;
  const routing = {
    routes: [
      table([
        route({ name: 'retrying', match: [], timeoutMs: 0, retries: retries({ attempts: 8, perTryTimeoutMs: perTry, retryOn: ['5xx'], backoffBaseMs: 1, backoffMaxMs: 2 }) }),
      ]),
    ],
    destinations: [],
  };
  const { h, agent } = await harness(t, [slow], routing);
  const r = await request(`${h.url}/`, agent);
  t.is(r.status, 200);
  t.is(r.body, 'answered', 'a later try answered: the two that hung were cut');
  t.true(tries >= 3);
  // each hung try was cut no sooner than its timeout (timers never fire early; a loaded
  // machine only makes them late)
  t.true(r.ms >= 2 * perTry - 1, `two tries cut at ${perTry} ms each, then an answer: ${Math.round(r.ms)} ms`);

  h.update(snapshot([slow], { routes: [table([route({ timeoutMs: 150, retries: retries({ attempts: 0 }) })])], destinations: [] }));
  tries = 0;
  const cut = await request(`${h.url}/`, agent);
  t.is(cut.status, 504);
  t.is(cut.body, 'upstream request timeout\n');
  t.is(tries, 1, 'no retry');
  t.true(cut.ms >= 149, `route timeout 150 ms: answered after ${Math.round(cut.ms)} ms`);
  t.deepEqual(await settled(h), [{ active: 0, pending: 0, retriesInFlight: 0 }]);
});

test('a retry given up during its back-off (route timeout, client gone) hands its max_retries slot back', async (t) => {
  const b = await flaky('always', 1);
  const routing = {
    routes: [table([route({ timeoutMs: 50, retries: retries({ attempts: 1, retryOn: ['5xx'], backoffBaseMs: 100_000, backoffMaxMs: 100_000 }) })])],
    destinations: [destinationRule(policy({ connectionPool: { maxRetries: 1 } }))],
  };
  const { h, agent } = await harness(t, [b], routing);
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push((await request(`${h.url}/`, agent)).status);
  // each request's retry waits (long back-off) and the route timeout ends it: 504, never the
  // 503 UO a leaked retry slot would cause from the second request on
  t.deepEqual(statuses, [504, 504, 504, 504, 504]);
  const cluster = (h.l7.debug().clusters as { retriesInFlight: number }[])[0]!;
  t.is(cluster.retriesInFlight, 0);
});

/** Round robin without retries, every endpoint under outlier detection with `od`. */
function roundRobinWithEjection(od: Partial<TrafficPolicy['outlierDetection']>): RoutingConfig {
  return {
    routes: [table([route({ retries: retries({ attempts: 0 }) })])],
    destinations: [destinationRule(policy({ loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { enabled: true, ...od } }))],
  };
}

test('outlier detection: ejected after N consecutive 5xx, back after baseEjectionTime, twice as long the second time', async (t) => {
  const good = await flaky('good', 0);
  const bad = await flaky('bad', 1);
  // the engine's clock moves only when the test says: the sweeps every 50 ms run exactly
  // where the test puts them, however slowly the requests go
  const clock = new FakeClock(0);
  const base = 1000;
  const routing = roundRobinWithEjection({ consecutive5xxErrors: 3, intervalMs: 50, baseEjectionTimeMs: base, maxEjectionPercent: 100 });
  const { h, agent } = await harness(t, [good, bad], routing, { clock });
  const reachesBad = async (requests: number) => {
    const seen = bad.count;
    for (let i = 0; i < requests; i++) await request(`${h.url}/`, agent);
    return bad.count > seen;
  };
  // round robin: every other request to "bad" until its third 503 ejects it (at time 0)
  for (let i = 0; i < 6; i++) await request(`${h.url}/`, agent);
  t.is(bad.count, 3);
  for (let i = 0; i < 4; i++) t.is((await request(`${h.url}/`, agent)).status, 200);
  t.is(bad.count, 3, 'no request reaches an ejected endpoint');
  clock.advance(base - 50); // the sweeps up to 950 ms
  t.false(await reachesBad(4), 'still ejected at 950 ms');
  clock.advance(50); // the sweep at 1,000 ms
  t.true(await reachesBad(2), 'back at the first sweep after baseEjectionTime');
  // failing again at once, no sweep in between: three more 503s eject it for 2 × base
  while (bad.count < 6) await request(`${h.url}/`, agent);
  t.false(await reachesBad(4), 'ejected again');
  clock.advance(2 * base - 50);
  t.false(await reachesBad(4), 'still ejected after 1,950 ms: the second ejection lasts twice as long');
  clock.advance(50);
  t.true(await reachesBad(2), 'back after 2,000 ms');
  const hosts = (h.l7.debug().clusters as { hosts: { timesEjected: number }[] }[])[0]!.hosts;
  t.deepEqual(hosts.map((x) => x.timesEjected).sort(), [0, 2]);
});

test('outlier detection never ejects past maxEjectionPercent', async (t) => {
  const backends = [await flaky('ok', 0), await flaky('bad1', 1), await flaky('bad2', 1)];
  const routing = roundRobinWithEjection({ consecutive5xxErrors: 2, intervalMs: 1000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 34 });
  // no sweep (a clock that stands still): nothing returns from ejection during the test
  const { h, agent } = await harness(t, backends, routing, { clock: new FakeClock(0) });
  for (let i = 0; i < 60; i++) await request(`${h.url}/`, agent);
  const ejected = h.l7.debug().clusters as { hosts: { ejected: boolean }[] }[];
  t.is(ejected[0]!.hosts.filter((x) => x.ejected).length, 1, 'one of three is 33%: a second would make 67%');
  t.true(backends[1]!.count + backends[2]!.count > 10, 'the failing endpoint that was not ejected still gets traffic');
});

test('past http1MaxPendingRequests the extra requests get 503 UO with x-envoy-overloaded without waiting for the backend', async (t) => {
  const slow = await heldBackend('busy');
  t.teardown(() => slow.release());
  const routing = {
    routes: [table([route({ retries: retries({ attempts: 0 }) })])],
    destinations: [destinationRule(policy({ connectionPool: { maxConnections: 1, http1MaxPendingRequests: 1 } }))],
  };
  const { h } = await harness(t, [slow], routing);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  t.teardown(() => agent.destroy());
  const answered: { status: number; overloaded: unknown }[] = [];
  const all = Array.from({ length: 5 }, () =>
    request(`${h.url}/`, agent).then((r) => (answered.push({ status: r.status, overloaded: r.headers['x-envoy-overloaded'] }), r)),
  );
  // the backend holds the one request in flight: the overflow is answered while it waits
  await eventually(() => answered.length >= 3, 10_000, 'the overflow to be answered');
  t.is(slow.waiting, 1, 'one request at the backend, unanswered');
  t.deepEqual(answered, new Array(3).fill({ status: 503, overloaded: 'true' }));
  slow.release();
  const replies = await Promise.all(all);
  t.is(replies.filter((r) => r.status === 200).length, 2, 'one in flight, one pending');
  t.is(slow.count, 2);
  t.deepEqual(await settled(h), [{ active: 0, pending: 0, retriesInFlight: 0 }]);
});

test('a noisy source workload cannot take the whole pending queue from another one', async (t) => {
  // the backend answers one request at a time, when the test says
  const order: string[] = [];
  const waiting: http.ServerResponse[] = [];
  const slow = await startBackend({
    name: 'shared',
    handler: (req, res) => {
      order.push(String(req.headers['x-who']));
      waiting.push(res);
    },
  });
  t.teardown(() => waiting.forEach((res) => res.destroy()));
  const routing = {
    routes: [table([route({ retries: retries({ attempts: 0 }) })])],
    destinations: [destinationRule(policy({ connectionPool: { maxConnections: 1, http1MaxPendingRequests: 4 } }))],
  };
  const clients = [
    { name: 'noisy', ip: '127.0.0.3' },
    { name: 'quiet', ip: '127.0.0.4' },
  ];
  const { h } = await harness(t, [slow], routing, { clients });
  const noisyAgent = new http.Agent({ keepAlive: true, maxSockets: 20 });
  const quietAgent = new http.Agent({ keepAlive: true });
  t.teardown(() => (noisyAgent.destroy(), quietAgent.destroy()));
  // the noisy source takes the one connection and fills the whole queue (4), 3 overflow...
  let noisyRefused = 0;
  const noisy = Array.from({ length: 8 }, (_, i) =>
    request(`${h.url}/`, noisyAgent, { localAddress: '127.0.0.3', headers: { 'x-who': `noisy-${i}` } }).then((r) => {
      if (r.status === 503) noisyRefused++;
      return r;
    }),
  );
  await eventually(() => order.length === 1 && noisyRefused === 3, 10_000, 'one noisy request at the backend, four queued, three refused');
  // ...the quiet one still gets a place: a noisy one queued gives up its slot...
  const quietReply = request(`${h.url}/`, quietAgent, { localAddress: '127.0.0.4', headers: { 'x-who': 'quiet' } });
  await eventually(() => noisyRefused === 4, 10_000, 'a noisy request to make room for the quiet one');
  // ...and is served before the noisy backlog: answer the backend's requests one by one
  for (let served = 0; served < 5; served++) {
    await eventually(() => waiting.length > 0, 10_000, `request ${served + 1} at the backend`);
    waiting.shift()!.end('done');
  }
  const quiet = await quietReply;
  t.is(quiet.status, 200);
  const noisyReplies = await Promise.all(noisy);
  t.is(noisyReplies.filter((r) => r.status === 503).length, 4, 'the noisy source gave up one queue slot to it');
  // round robin between the sources' queues: the noisy one in flight, one more noisy, then quiet
  t.is(order.indexOf('quiet'), 2, `served in the order ${order.join(' ')}`);
  t.is(order.length, 5);
});

for (const transport of ['tcp', 'tunnel'] as const) {
test(`gRPC through the mesh over ${transport === 'tcp' ? 'plain TCP' : 'HTTP/2 CONNECT tunnels (HBONE\'s shape)'}: grpc-js client and server, UNAVAILABLE retried (trailers-only and after headers)`, async (t) => {
  const svc = { echo: rawMethod('/test.Echo/Echo') } as grpc.ServiceDefinition;
  let calls = 0;
  const server = new grpc.Server();
  server.addService(svc, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls++;
      // odd calls fail: every other one after sending headers (grpc-status in trailers)
      if (calls % 4 === 1) return cb({ code: grpc.status.UNAVAILABLE, details: 'trailers-only' });
      if (calls % 4 === 3) {
        call.sendMetadata(new grpc.Metadata());
        return setTimeout(() => cb({ code: grpc.status.UNAVAILABLE, details: 'after headers' }), 5);
      }
      cb(null, Buffer.concat([Buffer.from('echo:'), call.request]));
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const backend = { name: 'grpc', port, server: net.createServer(), count: 0 };
  const routing = { routes: [table([route({ retries: retries({ attempts: 2, retryOn: ['unavailable'], backoffBaseMs: 1, backoffMaxMs: 2 }) })])], destinations: [] };
  const tunnel = transport === 'tunnel' ? await new TunnelConnector().start() : undefined;
  const h = await new Harness(snapshot([backend], routing, { portName: 'grpc-echo' }), 'http2', tunnel).listen();
  const Client = grpc.makeGenericClientConstructor(svc, 'Echo');
  const client = new Client(`127.0.0.1:${h.port}`, grpc.credentials.createInsecure()) as unknown as {
    echo(b: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void): void;
    close(): void;
  };
  t.teardown(async () => {
    client.close();
    server.forceShutdown();
    await h.close();
    tunnel?.close();
  });
  const results: string[] = [];
  for (let i = 0; i < 10; i++) {
    results.push(await new Promise<string>((res) => client.echo(Buffer.from(`m${i}`), (e, r) => res(e ? `error ${e.code}` : r!.toString()))));
  }
  t.deepEqual(
    results,
    Array.from({ length: 10 }, (_, i) => `echo:m${i}`),
  );
  t.is(calls, 20, 'every call failed once and was retried once');
});
}

test('HTTP/1.1 keep-alive pools over HTTP/2 CONNECT tunnels (HBONE\'s shape): retries and bodies work, connections are reused', async (t) => {
  const b = await flaky('tunnelled', 3);
  const tunnel = await new TunnelConnector().start();
  const routing = { routes: [table([route({ retries: retries({ attempts: 3, retryOn: ['5xx'] }) })])], destinations: [] };
  const h = await new Harness(snapshot([b], routing), 'http1', tunnel).listen();
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(async () => {
    agent.destroy();
    await h.close();
    tunnel.close();
    b.server.close();
  });
  const replies = [];
  for (let i = 0; i < 60; i++) replies.push(await request(`${h.url}/`, agent, { method: 'POST', body: `body-${i}` }));
  t.deepEqual(
    replies.map((r) => r.status),
    new Array<number>(60).fill(200),
  );
  t.deepEqual(
    replies.map((r) => r.body),
    Array.from({ length: 60 }, (_, i) => `body-${i}`),
  );
  t.is(tunnel.streams, 1, 'one tunnelled connection carried every request');
});
