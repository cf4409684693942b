// The L7 engine's upstream HTTP/1.1 side (agent/l7/http1.ts over undici Pools, cluster/pools.ts)
// with real Node clients and backends on loopback: DestinationRule connectionPool settings
// that act on the pooled connections (maxRequestsPerConnection, http.idleTimeout), bodies
// streamed both ways with back-pressure (nothing buffered whole), response trailers, and no
// pooled connection left behind when its endpoint leaves or the engine closes.
import test from 'ava';
import http from 'node:http';
import type { Socket } from 'node:net';
import { bodyOf, harness, heldBackend, request, snapshot, startBackend, type Backend } from '../helpers/l7-harness.js';
import { dest, destinationRule, policy, route, table } from '../helpers/routing-builders.js';
import { eventually } from '../helpers/eventually.js';
import { BIG, heldSink, sizeAndHash, stalls, writeBig, type BigWriter } from '../helpers/back-pressure.js';

/** A backend that counts the connections it accepted and those still open. */
async function counted(name: string, handler: http.RequestListener = (_q, s) => s.end('ok')): Promise<Backend & { opened: number; open: number }> {
  const b = (await startBackend({ name, handler })) as Backend & { opened: number; open: number };
  b.opened = 0;
  b.open = 0;
  b.server.on('connection', (s: Socket) => {
    b.opened++;
    b.open++;
    s.once('close', () => b.open--);
  });
  return b;
}

function routingWith(connectionPool: NonNullable<Parameters<typeof policy>[0]>['connectionPool']) {
  return { routes: [], destinations: [destinationRule(policy({ connectionPool }))] };
}

test('maxRequestsPerConnection 2: four requests in a row use two upstream connections; 1: one connection per request', async (t) => {
  const two = await counted('two');
  const { h, agent } = await harness(t, [two], routingWith({ maxRequestsPerConnection: 2 }));
  for (let i = 0; i < 4; i++) t.is((await request(`${h.url}/`, agent)).status, 200);
  t.is(two.opened, 2);

  const one = await counted('one');
  const o = await harness(t, [one], routingWith({ maxRequestsPerConnection: 1 }));
  for (let i = 0; i < 3; i++) t.is((await request(`${o.h.url}/`, o.agent)).status, 200);
  t.is(one.opened, 3, '"1 disables keep-alive"');
  await eventually(() => one.open === 0, 10_000, 'each connection closed after its request');
});

test('without a limit, requests in a row share one kept-alive connection (HEAD and GET alike)', async (t) => {
  const b = await counted('web');
  const { h, agent } = await harness(t, [b], { routes: [], destinations: [] });
  for (const method of ['GET', 'HEAD', 'GET', 'HEAD', 'POST']) t.is((await request(`${h.url}/`, agent, { method, body: method === 'POST' ? 'x' : undefined })).status, 200);
  t.is(b.opened, 1);
});

test("http.idleTimeout: the pool closes a connection idle that long, and the next request opens another", async (t) => {
  const b = await counted('web');
  (b.server as http.Server).keepAliveTimeout = 0; // the backend itself never closes an idle connection
  const { h, agent } = await harness(t, [b], routingWith({ httpIdleTimeoutMs: 300 }));
  t.is((await request(`${h.url}/`, agent)).status, 200);
  await eventually(() => b.open === 0, 10_000, 'the pool to close the idle connection');
  t.is((await request(`${h.url}/`, agent)).status, 200);
  t.is(b.opened, 2);
});

test('a request body streams upstream with back-pressure: while the backend reads nothing, the client cannot send it all; then it arrives whole', async (t) => {
  const sink = heldSink();
  const b = await startBackend({ name: 'sink', handler: sink.handler });
  const { h } = await harness(t, [b], { routes: [], destinations: [] });
  let w: BigWriter | undefined;
  const reply = new Promise<string>((resolve, reject) => {
    const req = http.request(`${h.url}/upload`, { method: 'POST', agent: false }, (res) => bodyOf(res).then(resolve, reject));
    req.on('error', reject);
    w = writeBig(req);
  });
  // the client stops once the buffers on the way are full: the engine does not read the body into memory
  await stalls(() => w!.written(), 'the client to stall');
  t.true(w!.written() < BIG, `the client sent ${w!.written()} of ${BIG} bytes while the backend read nothing`);
  sink.go();
  t.is(await reply, `${BIG} ${w!.sha256()}`);
});

test('a response body streams with back-pressure: while the client reads nothing, the backend cannot write it all; then it arrives whole', async (t) => {
  let w: BigWriter | undefined;
  const b = await startBackend({ name: 'source', handler: (_req, res) => void (w = writeBig(res)) });
  const { h } = await harness(t, [b], { routes: [], destinations: [] });
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${h.url}/download`, { agent: false }, resolve).on('error', reject));
  res.pause();
  await stalls(() => w?.written() ?? 0, 'the backend to stall');
  t.true(w!.written() < BIG, `the backend wrote ${w!.written()} of ${BIG} bytes while the client read nothing`);
  t.is(await sizeAndHash(res), `${BIG} ${w!.sha256()}`);
});

test('the trailers of a chunked HTTP/1.1 response reach the client', async (t) => {
  const b = await startBackend({
    name: 'trailers',
    handler: (_req, res) => {
      res.writeHead(200, { trailer: 'x-checksum' });
      res.write('part one, ');
      res.addTrailers({ 'x-checksum': 'c0ffee' });
      res.end('part two');
    },
  });
  const { h, agent } = await harness(t, [b], { routes: [], destinations: [] });
  const got = await new Promise<{ body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) =>
    http
      .get(`${h.url}/`, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ body, trailers: res.trailers }));
      })
      .on('error', reject),
  );
  t.is(got.body, 'part one, part two');
  t.is(got.trailers['x-checksum'], 'c0ffee');
});

test('an endpoint that leaves: its request in flight completes, then its pooled connection closes; closing the engine closes every pool', async (t) => {
  const stays = await counted('stays');
  const leaves = await heldBackend('leaves', 'held');
  let leavesOpen = 0;
  leaves.server.on('connection', (s: Socket) => {
    leavesOpen++;
    s.once('close', () => leavesOpen--);
  });
  const { h, agent } = await harness(t, [leaves], { routes: [], destinations: [] });
  const inFlight = request(`${h.url}/`, agent);
  await eventually(() => leaves.waiting === 1, 10_000, 'the request to reach the endpoint');
  h.update(snapshot([stays], { routes: [], destinations: [] }));
  t.is((await request(`${h.url}/`, agent)).status, 200, 'a new request goes to the endpoint that stays');
  t.is(leavesOpen, 1, 'the connection of the request in flight stays until it is answered');
  leaves.release();
  const r = await inFlight;
  t.is(r.status, 200);
  t.is(r.body, 'held');
  await eventually(() => leavesOpen === 0, 10_000, "the pool of the endpoint that left to close its connection");
  t.is(stays.open, 1);
  agent.destroy(); // the front listener's close waits for the client's connections
  await h.close();
  await eventually(() => stays.open === 0, 10_000, "the engine's close to close the pools");
  stays.server.close();
});

test('Expect: 100-continue is answered by the proxy and not sent upstream, also with the authority rewritten, and to a mirror', async (t) => {
  const seen: { host?: string; expect?: string; body: string }[] = [];
  const record = (name: string) =>
    startBackend({
      name,
      handler: async (req, res) => {
        seen.push({ host: req.headers.host, expect: req.headers.expect, body: await bodyOf(req) });
        res.end('ok');
      },
    });
  const web = await record('web');
  const shadow = await record('shadow');
  const routing = {
    routes: [
      table([
        route({
          rewrite: { uri: '', replacePrefixMatch: '', replaceFullPath: '', authority: 'web-v2' },
          mirrors: [{ destination: dest('', 100, { host: 'shadow.shop.svc.cluster.local' }), percentage: 100 }],
        } as never),
      ]),
    ],
    destinations: [],
  };
  const { h, agent } = await harness(t, [web], routing, { services: [{ name: 'shadow', backends: [shadow] }] });
  const r = await request(`${h.url}/`, agent, { method: 'POST', body: 'payload', headers: { host: 'web.shop', expect: '100-continue' } });
  t.is(r.status, 200);
  await eventually(() => seen.length === 2, 10_000, 'the request and its mirrored copy');
  t.deepEqual(
    seen.sort((a, b) => (a.host ?? '').localeCompare(b.host ?? '')),
    [
      { host: 'web-v2', expect: undefined, body: 'payload' },
      { host: 'web-v2-shadow', expect: undefined, body: 'payload' },
    ],
  );
});
