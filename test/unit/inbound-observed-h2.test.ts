// HTTP/2 observed, not served, at the destination (agent/proxy/inbound-observed-h2.ts): a
// port declared HTTP, a workload without HTTP rules, the connection over HBONE (an h2c
// CONNECT stream here, HBONE's shape without its TLS), no trace collector. Real sockets and
// real HTTP/2 on both ends: Node's HTTP/2 client writes into the CONNECT stream, Node's
// HTTP/2 server plays the pod. What it shows: the pod gets every stream as the client sent
// it, each stream is counted once (code, gRPC status, body sizes, flags) and read the same
// however the bytes are cut into reads, gRPC's trailers and trailers-only answers, 1xx
// heads, header blocks over CONTINUATION frames, resets from either side, and the close.
// Serial: the tap channel and the metrics registry are the process's.
import test, { type ExecutionContext } from 'ava';
import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { inbound, listenLoopback, mtlsFrom } from '../helpers/inbound-listener.js';
import { histogramSum, metricValue } from '../helpers/metrics.js';
import { eventually } from '../helpers/eventually.js';
import type { RequestEvent } from '../../agent/telemetry/tap.js';

const FROM_CLIENT = mtlsFrom('shop', 'client');
const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;

interface PodStream {
  path: string;
  /** the header fields as the pod's HTTP/2 server decoded them (name, value …) */
  raw: string[];
  body: number;
}

/** A pod: Node's HTTP/2 server recording each stream, answering with `handler` once the request has ended. */
async function h2Pod(
  t: ExecutionContext,
  handler: (s: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: number) => void,
  opts: {
    cutWrites?: boolean;
    settings?: http2.Settings;
    onHeaders?: (s: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;
  } = {},
): Promise<{ port: number; seen: PodStream[]; sessions: http2.ServerHttp2Session[] }> {
  const seen: PodStream[] = [];
  const server = http2.createServer(opts.settings ? { settings: opts.settings } : {});
  server.on('stream', (s: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
    s.on('error', () => {});
    if (opts.onHeaders?.(s, headers)) return;
    let body = 0;
    s.on('data', (d: Buffer) => (body += d.length));
    s.on('end', () => {
      seen.push({ path: String(headers[':path']), raw, body });
      handler(s, headers, body);
    });
  });
  const sessions: http2.ServerHttp2Session[] = [];
  server.on('session', (session) => sessions.push(session));
  const podPort = await listenLoopback(t, server);
  t.teardown(() => sessions.forEach((s) => s.destroy()));
  if (!opts.cutWrites) return { port: podPort, seen, sessions };
  // the pod's bytes cut into small writes, each its own read at the proxy (a forwarder in front of it)
  const sockets: net.Socket[] = [];
  const forwarder = net.createServer((c) => {
    const up = net.connect(podPort, '127.0.0.1');
    sockets.push(c, up);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
    c.pipe(up);
    up.pipe(new Cutter(c));
  });
  const port = await listenLoopback(t, forwarder);
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  return { port, seen, sessions };
}

/** A writable end that passes each write on to `to` in random pieces of 1–1,200 bytes, a millisecond apart. */
class Cutter extends Duplex {
  constructor(private readonly to: Duplex) {
    super();
    to.on('data', (d: Buffer) => this.push(d));
    to.on('end', () => this.push(null));
    to.on('close', () => this.destroy());
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    void (async () => {
      for (let at = 0; at < chunk.length;) {
        // mostly small pieces (frame headers and HPACK strings split), some larger (bodies)
        const n = 1 + Math.floor(Math.random() * (Math.random() < 0.7 ? 24 : 1200));
        if (this.to.destroyed) break;
        this.to.write(chunk.subarray(at, at + n));
        at += n;
        await new Promise((r) => setTimeout(r, 1));
      }
      done();
    })();
  }
  override _final(done: () => void): void {
    this.to.end();
    done();
  }
  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.to.destroy();
    done(err);
  }
}

/** An HTTP/2 client session through a CONNECT stream to the inbound side (its writes cut into pieces when asked). */
async function client(
  t: ExecutionContext,
  service: string,
  podPort: number,
  cut = false,
  settings?: http2.Settings,
): Promise<http2.ClientHttp2Session> {
  const ib = await inbound(t, [], podPort, FROM_CLIENT, 'tunnel', { httpService: service });
  const outer = http2.connect(`http://127.0.0.1:${ib.port}`);
  outer.on('error', () => {});
  t.teardown(() => outer.destroy());
  const tunnel = outer.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${podPort}` });
  tunnel.on('error', () => {});
  const transport = cut ? new Cutter(tunnel) : tunnel;
  const session = http2.connect('http://pod', {
    createConnection: () => transport as unknown as net.Socket,
    ...(settings ? { settings } : {}),
  });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  return session;
}

interface Answer {
  status: number;
  body: string;
  trailers: http2.IncomingHttpHeaders | undefined;
  informational: number[];
}

function call(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = session.request(headers);
    const a: Answer = { status: 0, body: '', trailers: undefined, informational: [] };
    r.on('headers', (h) => a.informational.push(Number(h[':status'])));
    r.on('response', (h) => (a.status = Number(h[':status'])));
    r.on('trailers', (h) => (a.trailers = h));
    r.setEncoding('latin1').on('data', (d: string) => (a.body += d));
    r.on('end', () => resolve(a));
    r.on('error', reject);
    r.end(body);
  });
}

/** Every request the destination reports for Service `service` while the test runs (the tap channel). */
async function tapped(t: ExecutionContext, service: string): Promise<RequestEvent[]> {
  const { requestChannel } = await import('../../agent/telemetry/tap.js');
  const events: RequestEvent[] = [];
  const on = (e: unknown) => {
    const r = e as RequestEvent;
    if (r.reporter === 'destination' && r.destinationService.startsWith(`${service}.`)) events.push(r);
  };
  requestChannel.subscribe(on);
  t.teardown(() => requestChannel.unsubscribe(on));
  return events;
}

const requests = (service: string, labels: Record<string, string> = {}) =>
  metricValue('istio_requests_total', { reporter: 'destination', destination_service_name: service, ...labels });

const sumOf = (name: string, service: string) => histogramSum(name, { reporter: 'destination', destination_service_name: service });

/** A pod answering `${method} ${path} ${body bytes}`, 404 for /missing, a 103 first for /early. */
const echo = (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders, body: number) => {
  if (h[':path'] === '/early') s.additionalHeaders({ ':status': 103, link: '</style.css>; rel=preload' });
  s.respond({ ':status': h[':path'] === '/missing' ? 404 : 200, 'x-served-by': 'pod' });
  s.end(`${h[':method']} ${h[':path']} ${body}`);
};

/**
 * 24 requests on one session, 8 at a time: bodies of several sizes, a unique 300-byte field
 * each (the HPACK tables fill and evict), values with every octet Node allows (Huffman-coded
 * where shorter), one 20,000-byte field (its header block continues in CONTINUATION frames),
 * a 103 before one answer, a 404.
 */
async function exchange(t: ExecutionContext, session: http2.ClientHttp2Session, pod: { seen: PodStream[] }, events: RequestEvent[]) {
  const octets = Array.from({ length: 256 }, (_v, c) => c).filter((c) => c === 9 || (c >= 0x20 && c !== 0x7f));
  const sent: { path: string; method: string; authority: string; status: number; body: number; fields: Record<string, string> }[] = [];
  for (let i = 0; i < 24; i++) {
    const path = i === 5 ? '/missing' : i === 7 ? '/early' : `/item/${i}?q=${i}`;
    const method = i % 3 === 0 ? 'POST' : 'GET';
    const authority = `shop-${i % 4}.example`;
    const body = method === 'POST' ? 'x'.repeat(i * 997) : '';
    const fields: Record<string, string> = {
      [`x-unique-${i}`]: `${i}-`.padEnd(300, String.fromCharCode(97 + (i % 26))),
      // one octet amid 40 × 'a': shorter Huffman-coded than not whatever the octet's code
      // (5–30 bits), so nghttp2 codes it; 10 fields × 24 requests reach every octet Node allows
      ...Object.fromEntries(
        Array.from({ length: 10 }, (_v, k) => [
          `x-octet-${k}`,
          `${'a'.repeat(20)}${String.fromCharCode(octets[(i * 10 + k) % octets.length]!)}${'a'.repeat(20)}`,
        ]),
      ),
    };
    if (i === 9) fields['x-large'] = 'L'.repeat(20_000);
    sent.push({ path, method, authority, status: path === '/missing' ? 404 : 200, body: body.length, fields });
  }
  for (let from = 0; from < sent.length; from += 8) {
    const answers = await Promise.all(
      sent
        .slice(from, from + 8)
        .map((r) =>
          call(
            session,
            { ':method': r.method, ':path': r.path, ':authority': r.authority, ...r.fields },
            r.method === 'POST' ? 'x'.repeat(r.body) : undefined,
          ),
        ),
    );
    for (const [k, a] of answers.entries()) {
      const r = sent[from + k]!;
      t.is(a.status, r.status);
      t.is(a.body, `${r.method} ${r.path} ${r.body}`);
      if (r.path === '/early') t.deepEqual(a.informational, [103]);
    }
  }
  // the pod got every field as the client sent it, nothing added
  for (const r of sent) {
    const got = pod.seen.find((p) => p.path === r.path)!;
    for (const [name, value] of Object.entries(r.fields)) t.is(got.raw[got.raw.indexOf(name) + 1], value, `${r.path}: ${name}`);
    t.false(got.raw.includes('x-request-id'), 'no x-request-id added');
    t.is(got.body, r.body);
  }
  await eventually(() => events.length === sent.length, 10_000, 'every stream reported');
  const byPath = new Map(events.map((e) => [e.path, e]));
  for (const r of sent) {
    const e = byPath.get(r.path.split('?')[0]!);
    t.truthy(e, `${r.path} reported`);
    t.like(e, { method: r.method, authority: r.authority, status: r.status, responseFlags: '-', grpcStatus: '' });
  }
  return sent;
}

test.serial('the pod gets every stream as the client sent it, and each is counted once with its code, fields and body sizes', async (t) => {
  const events = await tapped(t, 'observed-h2');
  const pod = await h2Pod(t, echo);
  const session = await client(t, 'observed-h2', pod.port, false, { initialWindowSize: 99_999 });
  const sent = await exchange(t, session, pod, events);
  // relayed, not served: the pod's session is the client's own (its SETTINGS came through)
  t.is(pod.sessions.length, 1);
  t.is(pod.sessions[0]!.remoteSettings.initialWindowSize, 99_999);
  t.is(await requests('observed-h2', { response_code: '200', request_protocol: 'http', response_flags: '-' }), 23);
  t.is(await requests('observed-h2', { response_code: '404' }), 1);
  t.is(
    await sumOf('istio_request_bytes', 'observed-h2'),
    sent.reduce((a, r) => a + r.body, 0),
  );
  t.is(
    await sumOf('istio_response_bytes', 'observed-h2'),
    sent.reduce((a, r) => a + Buffer.byteLength(`${r.method} ${r.path} ${r.body}`), 0),
  );
});

test.serial(
  'however the bytes are cut into reads, both ways, the same streams are read (and with a pod that shrinks the HPACK table)',
  async (t) => {
    for (let round = 0; round < 2; round++) {
      const events = await tapped(t, `observed-h2-cut${round}`);
      // the second round's pod allows the client's encoder a table of 100 octets: it says so in a size update and evicts at once
      const pod = await h2Pod(t, echo, { cutWrites: true, ...(round === 1 ? { settings: { headerTableSize: 100 } } : {}) });
      const session = await client(t, `observed-h2-cut${round}`, pod.port, true);
      await exchange(t, session, pod, events);
      session.close();
    }
  },
);

test.serial(
  "gRPC: the status in the trailers, or in a trailers-only answer, is the call's grpc_response_status; request_protocol is grpc",
  async (t) => {
    const events = await tapped(t, 'observed-grpc');
    const pod = await h2Pod(t, (s, h) => {
      if (h[':path'] === '/shop.Catalog/Missing') {
        s.respond(
          { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'not found' },
          { endStream: true },
        );
        return;
      }
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
    });
    const session = await client(t, 'observed-grpc', pod.port);
    const grpcCall = (path: string) =>
      call(
        session,
        { ':method': 'POST', ':path': path, 'content-type': 'application/grpc+proto', te: 'trailers' },
        Buffer.from([0, 0, 0, 0, 0]),
      );
    const ok = await grpcCall('/shop.Catalog/Get');
    t.is(ok.trailers?.['grpc-status'], '0');
    const missing = await grpcCall('/shop.Catalog/Missing');
    t.is(missing.status, 200);
    await eventually(() => events.length === 2, 10_000, 'both calls reported');
    t.is(await requests('observed-grpc', { request_protocol: 'grpc', grpc_response_status: '0', response_code: '200' }), 1);
    t.is(await requests('observed-grpc', { request_protocol: 'grpc', grpc_response_status: '5', response_code: '200' }), 1);
    t.is(await sumOf('istio_response_bytes', 'observed-grpc'), 7);
  },
);

test.serial(
  "a stream the client resets is counted DC, one the pod resets UR (not after its whole answer), and the connection's close reports the streams still open",
  async (t) => {
    const events = await tapped(t, 'observed-h2-reset');
    const arrived: string[] = [];
    const pod = await h2Pod(t, () => {}, {
      onHeaders: (s, h) => {
        arrived.push(String(h[':path']));
        if (h[':path'] === '/reset') s.close(NGHTTP2_INTERNAL_ERROR);
        if (h[':path'] === '/answered') {
          // the whole answer, then the upload it no longer wants is stopped
          s.respond({ ':status': 413 });
          s.end('too large', () => s.close(NGHTTP2_NO_ERROR));
        }
        return true; // the others are never answered
      },
    });
    const session = await client(t, 'observed-h2-reset', pod.port);
    await t.throwsAsync(call(session, { ':path': '/reset' }));
    const upload = session.request({ ':method': 'POST', ':path': '/answered' });
    upload.on('error', () => {});
    upload.write('x'.repeat(1000)); // never ended by the client
    await eventually(() => events.some((e) => e.path === '/answered'), 10_000, 'the answered upload reported');
    t.like(
      events.find((e) => e.path === '/answered'),
      { status: 413, responseFlags: '-' },
    );
    const cancelled = session.request({ ':path': '/cancel' });
    cancelled.on('error', () => {});
    const open = session.request({ ':path': '/open' });
    open.on('error', () => {});
    await eventually(() => arrived.includes('/cancel') && arrived.includes('/open'), 10_000, 'both requests at the pod');
    cancelled.close(NGHTTP2_CANCEL);
    await eventually(() => events.length === 3, 10_000, 'the two resets reported');
    t.like(
      events.find((e) => e.path === '/reset'),
      { status: 0, responseFlags: 'UR' },
    );
    t.like(
      events.find((e) => e.path === '/cancel'),
      { status: 0, responseFlags: 'DC' },
    );
    // the client goes away (its session and with it the CONNECT stream): what is open is reported
    session.destroy();
    await eventually(() => events.length === 4, 10_000, 'the open stream reported at the close');
    t.like(
      events.find((e) => e.path === '/open'),
      { status: 0, responseFlags: 'DC' },
    );
    t.is(await requests('observed-h2-reset', { response_flags: 'UR' }), 1);
    t.is(await requests('observed-h2-reset', { response_flags: 'DC' }), 2);
  },
);
