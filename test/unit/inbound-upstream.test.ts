// The destination's HTTP/1.1 forwarding to the pod (agent/proxy/inbound-http.ts: an undici
// Client per inbound connection, one dispatch handler per request) with real sockets: a
// TCP listener plays the node proxy's inbound port and hands every accepted socket to
// deliverInbound (test/helpers/inbound-listener.ts); real Node HTTP servers play the pod,
// Node's client and raw sockets the peer. The port is declared HTTP by a Service, so every
// request is read and counted (reporter="destination"), as on a meshed HTTP port. What it
// shows: one kept-alive pod connection per inbound connection (the one delivery opened
// first), the idle timeout and the pod's Keep-Alive hint, headers as forwarded both ways,
// Expect, pipelining, asterisk-form, 1xx, trailers, back-pressure both ways, errors with
// their status and response flag, and no pod connection left behind.
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import net from 'node:net';
import { inbound, listenLoopback, PLAINTEXT, rawExchange, type Inbound } from '../helpers/inbound-listener.js';
import { metricValue } from '../helpers/metrics.js';
import { eventually } from '../helpers/eventually.js';
import { BIG, heldSink, sizeAndHash, stalls, writeBig, type BigWriter } from '../helpers/back-pressure.js';
import { bodyOf, harness, startBackend } from '../helpers/l7-harness.js';

interface Seen {
  method: string;
  url: string;
  httpVersion: string;
  raw: string[];
  body: string;
}

interface Pod {
  server: http.Server;
  port: number;
  seen: Seen[];
  /** connections accepted, open now, and ended by the proxy's side (a FIN from it, not the pod's own close) */
  opened: number;
  open: number;
  endedByProxy: number;
}

/** A pod: a Node HTTP server that records each request (raw headers, body) and answers with `handler`. */
async function pod(
  t: ExecutionContext,
  handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void = (_q, s) => s.end('ok'),
): Promise<Pod> {
  const p = { seen: [], opened: 0, open: 0, endedByProxy: 0 } as unknown as Pod;
  p.server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('latin1').on('data', (d: string) => (body += d));
    req.on('end', () => {
      p.seen.push({ method: req.method!, url: req.url!, httpVersion: req.httpVersion, raw: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  p.server.keepAliveTimeout = 60_000; // the pod does not close an idle connection in these tests unless told
  p.server.on('connection', (s: net.Socket) => {
    p.opened++;
    p.open++;
    s.once('end', () => p.endedByProxy++);
    s.once('close', () => p.open--);
  });
  p.port = await listenLoopback(t, p.server);
  t.teardown(() => p.server.closeAllConnections());
  return p;
}

/** The inbound side for `p`, its port declared HTTP by Service `service` (a name per test: its own metric series). */
const destination = (t: ExecutionContext, p: Pod, service: string, timeouts = {}): Promise<Inbound> =>
  inbound(t, [], p.port, PLAINTEXT, 'tcp', { httpService: service, timeouts });

/** One keep-alive connection to the inbound side (Node's client, one socket). */
function peer(t: ExecutionContext): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  return agent;
}

interface Got {
  status: number;
  statusMessage: string;
  raw: string[];
  body: string;
  trailers: NodeJS.Dict<string>;
}

function send(
  ib: Inbound,
  agent: http.Agent | false,
  opts: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders | string[]; body?: string } = {},
): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: ib.port, agent, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers },
      (res) => {
        let body = '';
        res.setEncoding('latin1').on('data', (d: string) => (body += d));
        res.on('end', () =>
          resolve({ status: res.statusCode!, statusMessage: res.statusMessage!, raw: res.rawHeaders, body, trailers: res.trailers }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The values of field `name` (lowercase) in a raw header list, in order. */
const named = (raw: string[], name: string): string[] => {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
};

/** istio_requests_total at the destination for Service `service` with these labels. */
const requests = (service: string, labels: Record<string, string>) =>
  metricValue('istio_requests_total', { reporter: 'destination', destination_service_name: service, ...labels });

// --- one kept-alive pod connection per inbound connection -----------------------------------

test('requests in a row on one inbound connection share one pod connection, the one delivery opened: GET, HEAD, a GET with a body, POSTs with a length and chunked', async (t) => {
  const p = await pod(t, (req, res, body) => {
    const text = `${req.method} ${req.url} ${body}`;
    // a HEAD answered with the length its GET would have (else Node's client opens a new connection after it)
    res.setHeader('content-length', Buffer.byteLength(text));
    res.end(req.method === 'HEAD' ? undefined : text);
  });
  const ib = await destination(t, p, 'keep');
  const agent = peer(t);
  t.is((await send(ib, agent, { path: '/a' })).body, 'GET /a ');
  t.is((await send(ib, agent, { method: 'HEAD', path: '/b' })).status, 200);
  t.is((await send(ib, agent, { path: '/c', headers: { 'content-length': '4' }, body: 'data' })).body, 'GET /c data');
  t.is((await send(ib, agent, { method: 'POST', path: '/d', body: 'sized' })).body, 'POST /d sized');
  t.is(
    (await send(ib, agent, { method: 'POST', path: '/e', headers: { 'transfer-encoding': 'chunked' }, body: 'chunked' })).body,
    'POST /e chunked',
  );
  t.is(ib.results.length, 1, 'one inbound connection');
  t.is(p.opened, 1, 'one pod connection for the five requests');
  t.deepEqual(
    p.seen.map((s) => `${s.method} ${s.url} ${s.body}`),
    ['GET /a ', 'HEAD /b ', 'GET /c data', 'POST /d sized', 'POST /e chunked'],
  );
});

test('pipelined requests on one inbound connection are answered in order over the one pod connection', async (t) => {
  const p = await pod(t, (req, res) => {
    // the first answer is the slowest: order must come from the proxy, not from the pod's timing
    if (req.url === '/1') setTimeout(() => res.end('one'), 100);
    else res.end(req.url === '/2' ? 'two' : 'three');
  });
  const ib = await destination(t, p, 'pipelined');
  const r = await rawExchange(
    ib.port,
    'GET /1 HTTP/1.1\r\nHost: s\r\n\r\nGET /2 HTTP/1.1\r\nHost: s\r\n\r\nGET /3 HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n',
  );
  t.regex(
    r.received,
    /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\none(HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n)two(HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n)three$/,
  );
  t.deepEqual(
    p.seen.map((s) => s.url),
    ['/1', '/2', '/3'],
  );
  t.is(p.opened, 1);
});

test("the pod's Keep-Alive hint: the proxy closes the idle pod connection a second before the pod would (its own FIN), and the next request on the inbound connection opens another", async (t) => {
  const p = await pod(t);
  p.server.keepAliveTimeout = 3000; // announced as `Keep-Alive: timeout=3`: the proxy keeps it 2 s
  const ib = await destination(t, p, 'hint');
  const agent = peer(t);
  t.is((await send(ib, agent)).status, 200);
  await eventually(() => p.open === 0, 10_000, 'the idle pod connection to close');
  t.is(p.endedByProxy, 1, 'closed from the proxy’s side (the pod’s own 3 s timeout destroys without an end seen)');
  t.is((await send(ib, agent)).status, 200);
  t.is(ib.results.length, 1, 'on the same inbound connection');
  t.is(p.opened, 2, 'over a new pod connection');
});

test('the HTTP idle timeout: a pod connection idle that long is closed from the proxy’s side; one in use is not', async (t) => {
  const p = await pod(t, (req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('late'), 900);
    else res.end('ok');
  });
  const ib = await destination(t, p, 'idle', { httpIdleMs: 400 });
  t.is((await send(ib, false, { path: '/slow' })).body, 'late', 'a response slower than the idle timeout still comes');
  await eventually(() => p.open === 0, 10_000, 'the idle pod connection to close');
  t.is(p.endedByProxy, 1);
});

test('a pod connection does not outlive its inbound connection, idle or busy', async (t) => {
  let hold: http.ServerResponse | undefined;
  const p = await pod(t, (req, res) => {
    if (req.url === '/hold') hold = res;
    else res.end('ok');
  });
  const ib = await destination(t, p, 'ends');
  const agent = peer(t);
  t.is((await send(ib, agent)).status, 200);
  agent.destroy();
  await eventually(() => p.open === 0, 10_000, 'the idle pod connection to close with the inbound one');
  const s = net.connect(ib.port, '127.0.0.1');
  s.on('error', () => {});
  s.write('GET /hold HTTP/1.1\r\nHost: s\r\n\r\n');
  await eventually(() => hold !== undefined && p.open === 1, 10_000, 'the request to reach the pod');
  // a reset (a FIN alone is a half-close: the peer still gets its response, allowHalfOpen)
  s.resetAndDestroy();
  await eventually(() => p.open === 0, 10_000, 'the busy pod connection to close with the inbound one');
  t.is(await requests('ends', { response_code: '0', response_flags: 'DC' }), 1, 'the request the client gave up is DC');
});

// --- headers ----------------------------------------------------------------------------

test('headers to the pod: hop-by-hop fields and those Connection names are dropped, the rest pass as sent (case, order, repeats, X-Forwarded-For), Host untouched, x-request-id added', async (t) => {
  const p = await pod(t);
  const ib = await destination(t, p, 'headers');
  const raw = await rawExchange(
    ib.port,
    'GET /h?q=1 HTTP/1.1\r\nHost: web.shop:8080\r\nX-Mixed-Case: A\r\nConnection: close, X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\n' +
      'Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: x-sum\r\nX-Repeat: 1\r\nX-Forwarded-For: 10.0.0.9\r\nX-Repeat: 2\r\n\r\n',
  );
  t.regex(raw.received, /^HTTP\/1\.1 200 /);
  const seen = p.seen[0]!;
  t.is(seen.url, '/h?q=1');
  t.deepEqual(named(seen.raw, 'host'), ['web.shop:8080']);
  const rest = seen.raw.filter((_, i) => i % 2 === 0).filter((n) => !['host', 'connection', 'x-request-id'].includes(n.toLowerCase()));
  t.deepEqual(
    rest,
    ['X-Mixed-Case', 'X-Repeat', 'X-Forwarded-For', 'X-Repeat'],
    'no Keep-Alive, Proxy-Connection, TE, Trailer or X-Private',
  );
  t.deepEqual(named(seen.raw, 'x-repeat'), ['1', '2']);
  t.deepEqual(named(seen.raw, 'x-forwarded-for'), ['10.0.0.9'], 'what the peer sent, unchanged');
  t.deepEqual(named(seen.raw, 'connection'), ['keep-alive'], "the pod connection's own");
  t.is(named(seen.raw, 'x-request-id').length, 1, 'the trace headers of the destination (telemetry/tracing.ts) added');
});

test('headers from the pod: its reason phrase and repeated fields pass; its hop-by-hop fields and those its Connection names do not, and its `Connection: close` ends only the pod connection', async (t) => {
  const p = await pod(t, (_q, res) => {
    res.writeHead(
      200,
      'Fine By Me',
      [
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
        ['X-Pod', 'p'],
        ['Connection', 'close, X-Hop'],
        ['X-Hop', 'pod-only'],
        ['Keep-Alive', 'timeout=9'],
        ['Content-Length', '2'],
      ].flat(),
    );
    res.end('ok');
  });
  const ib = await destination(t, p, 'response-headers');
  const agent = peer(t);
  const r = await send(ib, agent);
  t.is(r.statusMessage, 'Fine By Me');
  t.deepEqual(named(r.raw, 'set-cookie'), ['a=1', 'b=2']);
  t.deepEqual(named(r.raw, 'x-pod'), ['p']);
  t.deepEqual(named(r.raw, 'x-hop'), []);
  t.false(named(r.raw, 'keep-alive').includes('timeout=9'), "the pod's Keep-Alive is not the client's");
  t.deepEqual(named(r.raw, 'connection'), ['keep-alive'], "the inbound connection's own");
  t.is((await send(ib, agent)).status, 200);
  t.is(ib.results.length, 1, 'the inbound connection stayed');
  t.is(p.opened, 2, 'the pod connection did not');
});

test('HTTP/1.0: a request without Host reaches the pod with the pod’s address as Host; an Expect it carries is not forwarded', async (t) => {
  const p = await pod(t);
  const ib = await destination(t, p, 'http10');
  t.regex((await rawExchange(ib.port, 'GET /old HTTP/1.0\r\n\r\n')).received, /^HTTP\/1\.1 200 /);
  t.regex(
    (await rawExchange(ib.port, 'POST /up HTTP/1.0\r\nHost: s\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi')).received,
    /^HTTP\/1\.1 200 /,
  );
  t.deepEqual(named(p.seen[0]!.raw, 'host'), [`127.0.0.1:${p.port}`]);
  t.deepEqual(named(p.seen[1]!.raw, 'expect'), []);
  t.is(p.seen[1]!.body, 'hi');
});

test('two Host fields are answered 400 and never forwarded (RFC 9112 §3.2)', async (t) => {
  const p = await pod(t);
  const ib = await destination(t, p, 'two-hosts');
  t.regex((await rawExchange(ib.port, 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n')).received, /^HTTP\/1\.1 400 /);
  t.deepEqual(p.seen, []);
});

// --- request forms and responses undici does not carry by itself ---------------------------

test('asterisk-form (OPTIONS *) reaches the pod as sent, and the inbound connection serves on', async (t) => {
  const p = await pod(t, (req, res) => {
    if (req.url === '*') res.setHeader('allow', 'GET, OPTIONS');
    res.end(req.url);
  });
  const ib = await destination(t, p, 'asterisk');
  const agent = peer(t);
  const star = await send(ib, agent, { method: 'OPTIONS', path: '*' });
  t.is(star.status, 200);
  t.is(star.body, '*');
  t.deepEqual(named(star.raw, 'allow'), ['GET, OPTIONS']);
  t.is((await send(ib, agent, { path: '/after' })).body, '/after');
  t.deepEqual(
    p.seen.map((s) => `${s.method} ${s.url}`),
    ['OPTIONS *', 'GET /after'],
  );
  t.is(ib.results.length, 1);
});

test('a 103 Early Hints from the pod is not taken for its response: the client gets the final one', async (t) => {
  const p = await pod(t, (_q, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload' });
    res.end('final');
  });
  const ib = await destination(t, p, 'hints');
  const r = await send(ib, false);
  t.is(r.status, 200);
  t.is(r.body, 'final');
});

test('the same through the L7 engine (source side): a 103 from the backend is not taken for its response', async (t) => {
  const b = await startBackend({
    name: 'hints',
    handler: (_q, res) => {
      res.writeEarlyHints({ link: '</style.css>; rel=preload' });
      res.end('final');
    },
  });
  const { h } = await harness(t, [b], { routes: [], destinations: [] });
  const r = await new Promise<{ status: number; body: string }>((resolve, reject) =>
    http
      .get(`${h.url}/`, { agent: false }, (res) => bodyOf(res).then((body) => resolve({ status: res.statusCode!, body }), reject))
      .on('error', reject),
  );
  t.deepEqual(r, { status: 200, body: 'final' });
});

test("the trailers of the pod's chunked response reach a client whose response is chunked", async (t) => {
  const p = await pod(t, (_q, res) => {
    res.writeHead(200, { trailer: 'x-checksum' });
    res.write('part one, ');
    res.addTrailers({ 'x-checksum': 'c0ffee' });
    res.end('part two');
  });
  const ib = await destination(t, p, 'trailers');
  const r = await send(ib, false);
  t.is(r.body, 'part one, part two');
  t.is(r.trailers['x-checksum'], 'c0ffee');
});

// --- bodies: streamed with back-pressure both ways ----------------------------------------

test('a request body streams to the pod with back-pressure: while the pod reads nothing, the client cannot send it all; then it arrives whole', async (t) => {
  const sink = heldSink();
  const server = http.createServer(sink.handler);
  const port = await listenLoopback(t, server);
  t.teardown(() => server.closeAllConnections());
  const ib = await inbound(t, [], port, PLAINTEXT, 'tcp', { httpService: 'upload' });
  let w: BigWriter | undefined;
  const reply = new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: ib.port, method: 'POST', path: '/upload', agent: false }, (res) =>
      bodyOf(res).then(resolve, reject),
    );
    req.on('error', reject);
    w = writeBig(req);
  });
  await stalls(() => w!.written(), 'the client to stall');
  t.true(w!.written() < BIG, `the client sent ${w!.written()} of ${BIG} bytes while the pod read nothing`);
  sink.go();
  t.is(await reply, `${BIG} ${w!.sha256()}`);
  t.is(await requests('upload', { response_code: '200' }), 1);
});

test('a response body streams from the pod with back-pressure: while the client reads nothing, the pod cannot write it all; then it arrives whole', async (t) => {
  let w: BigWriter | undefined;
  const p = await pod(t, (_q, res) => void (w = writeBig(res)));
  const ib = await destination(t, p, 'download');
  const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get({ host: '127.0.0.1', port: ib.port, path: '/download', agent: false }, resolve).on('error', reject),
  );
  res.pause();
  await stalls(() => w?.written() ?? 0, 'the pod to stall');
  t.true(w!.written() < BIG, `the pod wrote ${w!.written()} of ${BIG} bytes while the client read nothing`);
  t.is(await sizeAndHash(res), `${BIG} ${w!.sha256()}`);
});

// --- errors: status and response flag --------------------------------------------------------

test('the pod unreachable for a request (its connection closed, nothing listening): 503 with Envoy’s body, flagged UF', async (t) => {
  const p = await pod(t, (_q, res) => {
    res.setHeader('connection', 'close');
    res.end('bye');
  });
  const ib = await destination(t, p, 'unreachable');
  const agent = peer(t);
  t.is((await send(ib, agent)).body, 'bye');
  await eventually(() => p.open === 0, 10_000, 'the pod to close its connection');
  p.server.close();
  const r = await send(ib, agent);
  t.is(r.status, 503);
  t.is(r.body, 'upstream connect error or disconnect/reset before headers');
  t.is(await requests('unreachable', { response_code: '503', response_flags: 'UF' }), 1);
});

test('the pod resets the connection before its response head: 503 with Envoy’s body, flagged UC; the inbound connection serves on', async (t) => {
  const p = await pod(t, (req, res) => {
    if (req.url === '/reset') req.socket.resetAndDestroy();
    else res.end('ok');
  });
  const ib = await destination(t, p, 'reset-before');
  const agent = peer(t);
  const r = await send(ib, agent, { path: '/reset' });
  t.is(r.status, 503);
  t.is(r.body, 'upstream connect error or disconnect/reset before headers');
  t.is((await send(ib, agent)).status, 200);
  t.is(ib.results.length, 1);
  t.is(await requests('reset-before', { response_code: '503', response_flags: 'UC' }), 1);
});

test('the pod resets the connection mid-response: the client’s connection is reset, the request flagged UC (not DC)', async (t) => {
  const p = await pod(t, (_q, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial');
    setImmediate(() => res.socket?.resetAndDestroy());
  });
  const ib = await destination(t, p, 'reset-mid');
  const outcome = await new Promise<string>((resolve) => {
    http
      .get({ host: '127.0.0.1', port: ib.port, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve('ended'));
        res.on('error', () => resolve(`reset after ${res.statusCode}`));
      })
      .on('error', () => resolve('reset before a response'));
  });
  t.is(outcome, 'reset after 200');
  await eventually(async () => (await requests('reset-mid', {})) === 1, 10_000, 'the request to be counted');
  t.is(await requests('reset-mid', { response_code: '200', response_flags: 'UC' }), 1);
});

test('counted at the destination as before: code, and request and response body bytes', async (t) => {
  const p = await pod(t, (_q, res) => res.end('0123456789'));
  const ib = await destination(t, p, 'counted');
  t.is((await send(ib, false, { method: 'POST', body: 'abcde' })).status, 200);
  await eventually(async () => (await requests('counted', {})) === 1, 10_000, 'the request to be counted');
  t.is(await requests('counted', { response_code: '200', response_flags: '-', request_protocol: 'http' }), 1);
  const sums = async (name: string) => {
    const { registry } = await import('../../agent/telemetry/metrics.js');
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name) as
      { values: { metricName?: string; labels: Record<string, string>; value: number }[] } | undefined;
    return (m?.values ?? [])
      .filter((v) => v.metricName === `${name}_sum` && v.labels.destination_service_name === 'counted')
      .reduce((a, v) => a + v.value, 0);
  };
  t.is(await sums('istio_request_bytes'), 5);
  t.is(await sums('istio_response_bytes'), 10);
});
