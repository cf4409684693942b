// HTTP/1.1 observed, not served, at the destination (agent/proxy/inbound-observed.ts): a
// port declared HTTP, a workload without HTTP rules, the connection over HBONE (an h2c
// CONNECT stream here, HBONE's shape without its TLS), no trace collector. Real sockets: a
// TCP listener or h2c server plays the node proxy's inbound side (test/helpers/
// inbound-listener.ts), real Node HTTP servers or raw TCP servers play the pod, and the peer
// writes raw bytes into its CONNECT stream. What it shows: the pod gets the bytes as sent,
// each request is counted (code, sizes, flags) as the served path counts it, responses are
// matched to requests in order, strict framing, upgrades, a client that pipelines without
// reading is held, a later policy with HTTP fields, and where the served path still applies
// (a trace collector). Serial: the tracing case changes the process's tracing.
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { inbound, listenLoopback, mtlsFrom, type Inbound } from '../helpers/inbound-listener.js';
import { histogramSum, metricValue } from '../helpers/metrics.js';
import { eventually } from '../helpers/eventually.js';
import { authorizationPolicy } from '../helpers/config-yaml.js';
import { closeTracing, configureTracing } from '../../agent/telemetry/tracing.js';
import { MAX_AWAITING } from '../../agent/proxy/inbound-observed.js';

const FROM_CLIENT = mtlsFrom('shop', 'client');

interface Seen {
  method: string;
  url: string;
  raw: string[];
  body: string;
}

/** A pod: a Node HTTP server recording each request (raw header fields, body), answering with `handler`. */
async function httpPod(
  t: ExecutionContext,
  handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('latin1').on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, raw: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  const port = await listenLoopback(t, server);
  t.teardown(() => server.closeAllConnections());
  return { port, seen };
}

interface RawPod {
  port: number;
  /** every byte the pod received, all connections */
  received(): string;
  connections: net.Socket[];
  closed: number;
}

/** A pod that is a raw TCP server: it records what arrives and `onData` (given what its connection received so far) answers as the test wants. */
async function rawPod(t: ExecutionContext, onData: (s: net.Socket, all: string) => void = () => {}): Promise<RawPod> {
  let got = '';
  const p: RawPod = { port: 0, received: () => got, connections: [], closed: 0 };
  const server = net.createServer((s) => {
    p.connections.push(s);
    let mine = '';
    s.on('error', () => {});
    s.on('close', () => p.closed++);
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      mine += d.toString('latin1');
      onData(s, mine);
    });
  });
  p.port = await listenLoopback(t, server);
  t.teardown(() => p.connections.forEach((s) => s.destroy()));
  return p;
}

/** The inbound side for the pod at `port`, its port declared HTTP by Service `service` (a name per test). */
const destination = (t: ExecutionContext, port: number, service: string, policies: string[] = []): Promise<Inbound> =>
  inbound(t, policies, port, FROM_CLIENT, 'tunnel', { httpService: service });

/** A CONNECT stream to the inbound side, as a source node proxy opens one. */
function tunnel(t: ExecutionContext, ib: Inbound, podPort: number): Duplex {
  const session = http2.connect(`http://127.0.0.1:${ib.port}`);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const s = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${podPort}` });
  s.on('error', () => {});
  return s;
}

/** Everything the stream gives until it ends or closes (latin1). */
function readAll(s: Duplex): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.once('end', () => resolve(got));
    s.once('close', () => resolve(got));
  });
}

const statuses = (responses: string): number[] => [...responses.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

/** istio_requests_total at the destination for Service `service` with these labels. */
const requests = (service: string, labels: Record<string, string> = {}) =>
  metricValue('istio_requests_total', { reporter: 'destination', destination_service_name: service, ...labels });

const sumOf = (name: string, service: string) => histogramSum(name, { reporter: 'destination', destination_service_name: service });

test.serial(
  'the pod gets the requests exactly as sent (no x-request-id added), and each is counted with its code and body sizes',
  async (t) => {
    const pod = await httpPod(t, (req, res, body) => {
      const text = `${req.method} ${req.url} ${body}`;
      res.statusCode = req.url === '/missing' ? 404 : 200;
      res.setHeader('content-length', Buffer.byteLength(text));
      res.end(req.method === 'HEAD' ? undefined : text);
    });
    const ib = await destination(t, pod.port, 'observed-plain');
    const s = tunnel(t, ib, pod.port);
    const all = readAll(s);
    s.write('GET /a?q=1 HTTP/1.1\r\nHost: web\r\nX-Custom: One\r\n\r\n');
    s.write('POST /b HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello');
    s.write('POST /c HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n');
    s.write('HEAD /d HTTP/1.1\r\nHost: web\r\n\r\n');
    s.end('GET /missing HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n');
    const got = await all;

    t.deepEqual(statuses(got), [200, 200, 200, 200, 404], 'the responses, in order');
    t.deepEqual(
      pod.seen.map((r) => `${r.method} ${r.url} ${r.body}`),
      ['GET /a?q=1 ', 'POST /b hello', 'POST /c abcdefg', 'HEAD /d ', 'GET /missing '],
    );
    t.deepEqual(pod.seen[0]!.raw, ['Host', 'web', 'X-Custom', 'One'], 'header fields as sent: names cased as sent, nothing added');
    t.deepEqual(pod.seen[2]!.raw, ['Host', 'web', 'Transfer-Encoding', 'chunked'], 'chunked framing passed as it came');

    await eventually(async () => (await requests('observed-plain')) === 5, 10_000, 'five requests counted');
    t.is(await requests('observed-plain', { response_code: '200', response_flags: '-', request_protocol: 'http' }), 4);
    t.is(await requests('observed-plain', { response_code: '404' }), 1);
    t.is(
      await sumOf('istio_request_bytes', 'observed-plain'),
      5 + 7,
      'request bodies: 5 with a length, 7 chunked (the chunks, not their framing)',
    );
    // response bodies: "GET /a?q=1 " (11), "POST /b hello" (13), "POST /c abcdefg" (15), HEAD none, "GET /missing " (13)
    t.is(await sumOf('istio_response_bytes', 'observed-plain'), 11 + 13 + 15 + 13, "a HEAD's response has no body");
    // the connection's bytes are counted too (the relay's counts)
    t.true(
      (await metricValue('istio_tcp_received_bytes_total', { reporter: 'destination', destination_service_name: 'observed-plain' })) > 0,
    );
  },
);

test.serial('a request the parser cannot read is not passed on: the client gets 400 and the pod connection is closed unread', async (t) => {
  const pod = await rawPod(t);
  const ib = await destination(t, pod.port, 'observed-malformed');
  const s = tunnel(t, ib, pod.port);
  const all = readAll(s);
  // two different Content-Length fields: a request smuggler's favourite, refused by llhttp
  s.write('GET / HTTP/1.1\r\nHost: web\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab');
  t.regex(await all, /^HTTP\/1\.1 400 Bad Request\r\n/);
  await eventually(() => pod.closed === 1, 10_000, 'the pod connection closed');
  t.is(pod.received(), '', 'the pod read nothing');
  t.is(await requests('observed-malformed'), 0);
});

test.serial(
  'a response the parser cannot read is passed on as the pod sent it; its request is counted with UPE, code 0 (no head was read)',
  async (t) => {
    const bad = 'HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nbody';
    const pod = await rawPod(t, (s) => s.end(bad));
    const ib = await destination(t, pod.port, 'observed-bad-response');
    const s = tunnel(t, ib, pod.port);
    const all = readAll(s);
    s.write('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
    t.is(await all, bad, 'the bytes as the pod sent them');
    await eventually(async () => (await requests('observed-bad-response')) === 1, 10_000, 'the request counted');
    t.is(await requests('observed-bad-response', { response_flags: 'UPE', response_code: '0' }), 1);
  },
);

test.serial(
  "a request the pod never answers is counted UC when the pod closes, DC when the client goes away; a response read until close completes at the pod's FIN",
  async (t) => {
    const pod = await rawPod(t, (s, all) => {
      if (all.includes('GET /drop '))
        s.end(); // closes without an answer
      else if (all.includes('GET /until-close ')) s.end('HTTP/1.1 200 OK\r\n\r\nto the end'); // no length: the body ends with the connection
    });
    const ib = await destination(t, pod.port, 'observed-ends');

    const dropped = tunnel(t, ib, pod.port);
    const droppedAll = readAll(dropped);
    dropped.write('GET /drop HTTP/1.1\r\nHost: web\r\n\r\n');
    t.is(await droppedAll, '');
    dropped.destroy();
    await eventually(
      async () => (await requests('observed-ends', { response_flags: 'UC' })) === 1,
      10_000,
      'the dropped request counted UC',
    );
    t.is(await requests('observed-ends', { response_flags: 'UC', response_code: '0' }), 1);

    const untilClose = tunnel(t, ib, pod.port);
    const untilCloseAll = readAll(untilClose);
    untilClose.write('GET /until-close HTTP/1.1\r\nHost: web\r\n\r\n');
    t.is(await untilCloseAll, 'HTTP/1.1 200 OK\r\n\r\nto the end');
    await eventually(
      async () => (await requests('observed-ends', { response_code: '200' })) === 1,
      10_000,
      'the read-until-close response counted',
    );
    t.is(await requests('observed-ends', { response_code: '200', response_flags: '-' }), 1);
    t.is(await sumOf('istio_response_bytes', 'observed-ends'), 'to the end'.length);

    const gone = tunnel(t, ib, pod.port);
    gone.write('GET /never HTTP/1.1\r\nHost: web\r\n\r\n');
    await eventually(() => pod.received().includes('GET /never '), 10_000, 'the request at the pod');
    gone.destroy();
    await eventually(
      async () => (await requests('observed-ends', { response_flags: 'DC' })) === 1,
      10_000,
      'the abandoned request counted DC',
    );
    t.is(await requests('observed-ends', { response_flags: 'DC', response_code: '0' }), 1);
  },
);

test.serial('an Upgrade: the 101 is counted, then bytes pass both ways unread', async (t) => {
  const pod = await rawPod(t, (s, all) => {
    const head = all.indexOf('\r\n\r\n');
    if (head < 0) return;
    if (!all.startsWith('HTTP', 0) && all.length === head + 4) {
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      return;
    }
    const after = all.slice(head + 4);
    if (after.length > 0) s.write(after.toUpperCase()); // the other protocol: an echo in capitals
  });
  const ib = await destination(t, pod.port, 'observed-upgrade');
  const s = tunnel(t, ib, pod.port);
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString('latin1')));
  s.write('GET /chat HTTP/1.1\r\nHost: web\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  await eventually(() => got.includes('101 Switching'), 10_000, 'the 101');
  // not HTTP: a parser still reading would have refused it
  s.write('GET nonsense\r\n\r\n\x00\x01');
  await eventually(() => got.endsWith('GET NONSENSE\r\n\r\n\x00\x01'), 10_000, 'the echo through the tunnel');
  await eventually(async () => (await requests('observed-upgrade')) === 1, 10_000, 'the upgrade counted');
  t.is(await requests('observed-upgrade', { response_code: '101' }), 1);
});

test.serial(
  `a client that pipelines without reading is held at ${MAX_AWAITING} requests awaiting their responses, and read again as the pod answers`,
  async (t) => {
    const total = 600;
    let answering = false;
    let answered = 0;
    const answer = (s: net.Socket, all: string) => {
      const n = all.split('GET /p').length - 1;
      for (; answered < n; answered++) s.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
    };
    const pod = await rawPod(t, (s, all) => {
      if (answering) answer(s, all);
    });
    const ib = await destination(t, pod.port, 'observed-held');
    const s = tunnel(t, ib, pod.port);
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    // in writes of 20 requests, a few ms apart, so that they arrive as separate chunks
    for (let i = 0; i < total; i += 20) {
      let batch = '';
      for (let j = i; j < i + 20; j++) batch += `GET /p${j} HTTP/1.1\r\nHost: web\r\n\r\n`;
      s.write(batch);
      await new Promise((r) => setTimeout(r, 2));
    }
    const seenAtPod = () => pod.received().split('GET /p').length - 1;
    await eventually(() => seenAtPod() >= MAX_AWAITING, 10_000, 'the first requests at the pod');
    await new Promise((r) => setTimeout(r, 300));
    const held = seenAtPod();
    t.true(held < total, `the client was held: the pod got ${held} of ${total} while answering none`);
    t.true(held <= MAX_AWAITING + 200, `no more than ${MAX_AWAITING} awaiting and what the last chunks carried: ${held}`);
    answering = true;
    answer(pod.connections[0]!, pod.received());
    await eventually(() => statuses(got).length === total, 20_000, 'every request answered');
    t.is(seenAtPod(), total);
    await eventually(async () => (await requests('observed-held')) === total, 10_000, 'every request counted');
  },
);

test.serial(
  'a later policy with HTTP fields judges an observed connection as TCP: a DENY on paths closes it, and the next connection is served per request',
  async (t) => {
    const pod = await httpPod(t, (_q, res) => res.end('ok'));
    const ib = await destination(t, pod.port, 'observed-policy');
    const s = tunnel(t, ib, pod.port);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.write('GET /open HTTP/1.1\r\nHost: web\r\n\r\n');
    await eventually(() => got.includes('ok'), 10_000, 'the first answer');

    const denyAdmin = authorizationPolicy('shop', 'no-admin', {
      selector: { matchLabels: { app: 'server' } },
      action: 'DENY',
      rules: [{ to: [{ operation: { paths: ['/admin'] } }] }],
    });
    t.is(ib.apply([denyAdmin]), 1, 'the observed connection closed: its bytes are not read per request');
    await closed;

    const next = tunnel(t, ib, pod.port);
    const nextAll = readAll(next);
    next.write('GET /open HTTP/1.1\r\nHost: web\r\n\r\n');
    next.end('GET /admin HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n');
    const answers = await nextAll;
    t.deepEqual(statuses(answers), [200, 403]);
    t.regex(answers, /RBAC: access denied/);
  },
);

test.serial('with a trace collector configured the connection is served: the pod gets the x-request-id the destination adds', async (t) => {
  configureTracing({ endpoint: 'http://127.0.0.1:9/v1/traces', node: 'test' });
  t.teardown(() => closeTracing());
  const pod = await httpPod(t, (_q, res) => res.end('ok'));
  const ib = await destination(t, pod.port, 'observed-traced');
  const s = tunnel(t, ib, pod.port);
  const all = readAll(s);
  s.end('GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n');
  t.deepEqual(statuses(await all), [200]);
  const ids = pod.seen[0]!.raw.filter((_v, i, raw) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'x-request-id');
  t.is(ids.length, 1);
  t.regex(ids[0]!, /^[0-9a-f-]{36}$/);
});

test.serial(
  'h2c on such a port is observed too (inbound-observed-h2.test.ts): its requests are counted as HTTP/2, and its connection bytes too',
  async (t) => {
    const podServer = http2.createServer();
    podServer.on('stream', (st) => {
      st.respond({ ':status': 200 });
      st.end('h2 ok');
    });
    const podPort = await listenLoopback(t, podServer);
    const ib = await destination(t, podPort, 'observed-h2c');
    const s = tunnel(t, ib, podPort);
    const session = http2.connect('http://pod', { createConnection: () => s as unknown as net.Socket });
    session.on('error', () => {});
    t.teardown(() => session.destroy());
    const body = await new Promise<string>((resolve, reject) => {
      const r = session.request({ ':path': '/h2' });
      let b = '';
      r.setEncoding('latin1').on('data', (d: string) => (b += d));
      r.on('end', () => resolve(b));
      r.on('error', reject);
      r.end();
    });
    t.is(body, 'h2 ok');
    await eventually(async () => (await requests('observed-h2c', { response_code: '200' })) === 1, 10_000, 'the stream counted');
    session.close();
    await eventually(
      async () =>
        (await metricValue('istio_tcp_received_bytes_total', { reporter: 'destination', destination_service_name: 'observed-h2c' })) > 24,
      10_000,
      'the connection bytes counted (the h2c preface alone is 24)',
    );
  },
);

test.serial(
  'however the bytes are cut into reads, the same requests are read: heads split mid-line and over 32 fields, bodies split mid-chunk',
  async (t) => {
    const { requestChannel } = await import('../../agent/telemetry/tap.js');
    const events: { method: string; path: string; authority: string; status: number }[] = [];
    const onRequest = (e: unknown) => {
      const r = e as { destinationService: string; method: string; path: string; authority: string; status: number };
      if (r.destinationService.startsWith('observed-split.'))
        events.push({ method: r.method, path: r.path, authority: r.authority, status: r.status });
    };
    requestChannel.subscribe(onRequest);
    t.teardown(() => requestChannel.unsubscribe(onRequest));

    const pod = await httpPod(t, (req, res, body) => {
      res.statusCode = 200 + (body.length % 7);
      res.end(`${req.url}|${body.length}`);
    });
    const many = Array.from({ length: 40 }, (_v, i) => `X-Field-${i}: value-${i}\r\n`).join('');
    const requests = [
      `GET /first/${'a'.repeat(300)} HTTP/1.1\r\nHost: one\r\n\r\n`,
      `POST /chunked HTTP/1.1\r\n${many}Host: two\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`,
      'HEAD /head HTTP/1.1\r\nHost: three\r\n\r\n',
      `PUT /sized HTTP/1.1\r\nHost: four\r\nContent-Length: 11\r\n\r\n0123456789A`,
      'GET /last HTTP/1.1\r\nHost: five\r\nConnection: close\r\n\r\n',
    ];
    const expected = [
      { method: 'GET', path: `/first/${'a'.repeat(300)}`, authority: 'one', status: 200 },
      { method: 'POST', path: '/chunked', authority: 'two', status: 200 + (11 % 7) },
      { method: 'HEAD', path: '/head', authority: 'three', status: 200 },
      { method: 'PUT', path: '/sized', authority: 'four', status: 200 + (11 % 7) },
      { method: 'GET', path: '/last', authority: 'five', status: 200 },
    ];
    const bytes = Buffer.from(requests.join(''), 'latin1');
    const ib = await inbound(t, [], pod.port, FROM_CLIENT, 'tcp', { httpService: 'observed-split' });
    // cuts at every 13th byte in one round, at random places in others
    const cuts = [Array.from({ length: Math.floor(bytes.length / 13) }, (_v, i) => (i + 1) * 13)];
    for (let round = 0; round < 3; round++)
      cuts.push([...new Set(Array.from({ length: 30 }, () => 1 + Math.floor(Math.random() * (bytes.length - 1))))].sort((a, b) => a - b));
    for (const at of cuts) {
      events.length = 0;
      const s = net.connect(ib.port, '127.0.0.1');
      s.setNoDelay(true);
      s.on('error', () => {});
      const all = readAll(s);
      let from = 0;
      for (const to of [...at, bytes.length]) {
        s.write(bytes.subarray(from, to));
        from = to;
        await new Promise((r) => setTimeout(r, 1)); // most cuts a read of their own
      }
      t.deepEqual(
        statuses(await all),
        expected.map((e) => e.status),
        `cut at ${at.join(',')}`,
      );
      await eventually(() => events.length === expected.length, 10_000, 'every request read');
      t.deepEqual(events, expected, `cut at ${at.join(',')}`);
    }
    t.is(await sumOf('istio_request_bytes', 'observed-split'), cuts.length * (11 + 11));
    // observed, not served: the pod got the requests with nothing added
    t.false(
      pod.seen.some((r) => r.raw.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'x-request-id')),
      'no x-request-id added',
    );
  },
);
