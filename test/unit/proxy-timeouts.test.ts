// Every phase of a connection through the outbound proxy has a timeout
// (agent/transport/timeouts.ts), on real sockets on loopback: a slow request head (slowloris)
// is cut with 408 at the head timeout while the clients around it are served; a connection
// silent on a declared HTTP port is cut likewise; idle HTTP/1.1 keep-alive connections and
// HTTP/2 sessions without streams are closed after the idle timeout (a quiet open stream is
// not); opaque TCP without a byte either way is closed after its idle timeout (the
// DestinationRule's, else the proxy's), while traffic and half-close keep working. Issue 8,
// finding 5: these were set on servers that never listen, so Node never applied them.
import test from 'ava';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { eventually } from '../helpers/eventually.js';
import { closedByPeer, loopbackProxy, within } from '../helpers/outbound-proxy.js';
import { request, snapshot, startBackend, type Backend } from '../helpers/l7-harness.js';
import { destinationRule, policy } from '../helpers/routing-builders.js';
import { emptyRouting, type RoutingConfig } from '../../control/api/snapshot-routing.js';
import { idleFor } from '../helpers/idle.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

async function backend(t: { teardown(fn: () => unknown): void }): Promise<Backend> {
  const b = await startBackend({ name: 'web-1', handler: (_q, s) => s.end('ok') });
  t.teardown(() => b.server.close());
  return b;
}

/** A TCP echo server on 127.0.0.1 (half-open: it answers after the client's FIN too). */
async function tcpEcho(t: { teardown(fn: () => unknown): void }, host = '127.0.0.1'): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.on('data', (d: Buffer) => s.write(d));
    s.on('end', () => s.end('bye'));
  });
  await new Promise<void>((r) => srv.listen(0, host, r));
  t.teardown(() => srv.close());
  return (srv.address() as AddressInfo).port;
}

/** An IPv4 address of this machine off loopback: the passthrough never dials "this host" (127/8, passthrough-guard.ts). */
function offLoopbackIp(): string {
  const ip = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (!ip) throw new Error('this test needs an IPv4 address off loopback (an interface besides lo)');
  return ip;
}

test('a slowloris head is cut with 408 at the head timeout, while the clients around it are served', async (t) => {
  const lp = await loopbackProxy(t, snapshot([await backend(t)], emptyRouting()), { timeouts: { requestHeadersMs: 600 } });
  const started = performance.now();
  const slow = await Promise.all(Array.from({ length: 20 }, () => lp.connect()));
  const cut = slow.map((s) => {
    // a header line every 100 ms: never idle, never done
    s.write('GET / HTTP/1.1\r\nHost: web\r\n');
    const every = setInterval(() => s.writable && s.write(`x-slow-${Math.random()}: 1\r\n`), 100);
    return closedByPeer(s).then((r) => {
      clearInterval(every);
      return { ...r, afterMs: performance.now() - started };
    });
  });
  // clients on other connections, while the slow ones wait: served at once, every one
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  const served: number[] = [];
  let slowOpen = true;
  void Promise.all(cut).then(() => (slowOpen = false));
  while (slowOpen && served.length < 500) {
    served.push((await request(`http://127.0.0.1:${lp.port}/`, agent)).status);
    await idleFor(20, 'other clients paced while the slow ones wait');
  }
  const results = await within(Promise.all(cut), 10_000);
  t.truthy(results, 'every slow connection was closed by the proxy');
  for (const r of results ?? []) {
    t.regex(r.data, /^HTTP\/1\.1 408 /, 'answered 408 Request Timeout');
    t.true(r.afterMs >= 600, `cut after ${r.afterMs} ms: not before the head timeout`);
  }
  t.true(served.length > 0, 'others were served while the slow connections were open');
  t.deepEqual([...new Set(served)], [200], 'every other request succeeded');
});

test('a connection silent on a declared HTTP port is closed at the head timeout (408); on HTTP/2 also without its preface', async (t) => {
  const h1 = await loopbackProxy(t, snapshot([await backend(t)], emptyRouting()), { timeouts: { requestHeadersMs: 300 } });
  const h2 = await loopbackProxy(t, snapshot([await backend(t)], emptyRouting(), { portName: 'grpc' }), { timeouts: { requestHeadersMs: 300 } });
  const silent = await within(closedByPeer(await h1.connect()), 5000);
  t.regex(silent?.data ?? '', /^HTTP\/1\.1 408 /);
  const partial = await h2.connect();
  partial.write(H2_PREFACE.subarray(0, 10));
  const r = await within(closedByPeer(partial), 5000);
  t.truthy(r, 'the HTTP/2 connection that never completed its preface was closed');
});

test('an idle HTTP/1.1 keep-alive connection is closed after the idle timeout, not while a request is in flight', async (t) => {
  let release: (() => void) | undefined;
  const b = await startBackend({
    name: 'web-1',
    handler: (q, s) => {
      if (q.url === '/slow') release = () => s.end('slow');
      else s.end('ok');
    },
  });
  t.teardown(() => b.server.close());
  const lp = await loopbackProxy(t, snapshot([b], emptyRouting()), { timeouts: { httpIdleMs: 300 } });
  const s = await lp.connect();
  const closed = closedByPeer(s);
  s.write('GET /slow HTTP/1.1\r\nHost: web\r\n\r\n');
  await idleFor(700, 'a request in flight for longer than twice the idle timeout');
  t.false(s.destroyed, 'a request in flight keeps its connection past the idle timeout');
  (await eventually(() => release, 20_000, 'the request at the backend'))();
  await eventually(() => s.bytesRead > 0, 20_000, 'the slow response');
  const r = await within(closed, 5000);
  t.regex(r?.data ?? '', /^HTTP\/1\.1 200 /);
  t.true(r?.ended, 'then the idle connection was closed');
});

test('an HTTP/2 connection without streams is closed after the idle timeout; one with a quiet open stream is not', async (t) => {
  // the held stream answers only once the idle session is closed: quiet for as long as that takes
  let release: (() => void) | undefined;
  const b = await startBackend({
    name: 'web-1',
    h2: true,
    handler: (q, s) => {
      if (q.url === '/hold') release = () => s.end('held');
      else s.end('ok');
    },
  });
  t.teardown(() => b.server.close());
  const lp = await loopbackProxy(t, snapshot([b], emptyRouting(), { portName: 'grpc' }), { timeouts: { httpIdleMs: 300 } });
  const idle = http2.connect(`http://127.0.0.1:${lp.port}`);
  idle.on('error', () => {});
  t.teardown(() => idle.destroy());
  const idleClosed = new Promise<boolean>((r) => idle.once('close', () => r(true)));
  const busy = http2.connect(`http://127.0.0.1:${lp.port}`);
  busy.on('error', () => {});
  t.teardown(() => busy.destroy());
  let busyClosed = false;
  busy.once('close', () => (busyClosed = true));
  const held = new Promise<string>((resolve, reject) => {
    const st = busy.request({ ':path': '/hold' });
    let body = '';
    st.setEncoding('utf8');
    st.on('data', (d: string) => (body += d));
    st.on('end', () => resolve(body));
    st.on('error', reject);
    st.end();
  });
  t.truthy(await within(idleClosed, 5000), 'the session without streams was closed');
  t.false(busyClosed, 'the session with an open stream was not');
  (await eventually(() => release, 20_000, 'the held request at the backend'))();
  t.is(await held, 'held');
});

test('opaque TCP: no byte either way for the idle timeout closes both sides; bytes keep it open, half-close is carried', async (t) => {
  const port = await tcpEcho(t);
  const routing: RoutingConfig = { ...emptyRouting(), destinations: [destinationRule(policy({ connectionPool: { tcpIdleTimeoutMs: 1000 } }))] };
  const snap = snapshot([await backend(t)], routing, { portName: 'tcp' });
  snap.services[0]!.ports[0]!.endpoints[0]!.port = port;
  const lp = await loopbackProxy(t, snap);
  // traffic every 150 ms keeps it open past the idle timeout (1 s: far more than a loaded
  // machine stalls between two writes)
  const busy = await lp.connect();
  let echoed = '';
  busy.on('data', (d: Buffer) => (echoed += d.toString()));
  for (let i = 0; i < 10; i++) {
    busy.write('x');
    await idleFor(150, 'traffic paced below the idle timeout');
  }
  t.false(busy.destroyed);
  await eventually(() => echoed === 'x'.repeat(10), 20_000, 'the echoes');
  // half-close: the server's answer after our FIN still arrives
  const closing = closedByPeer(busy);
  busy.end('y');
  t.is((await within(closing, 5000))?.data, 'ybye');
  // silent: closed by the proxy
  const silent = await lp.connect();
  t.truthy(await within(closedByPeer(silent), 5000), 'the idle connection was closed');
});

test('passthrough TCP (no Service) gets the proxy’s TCP idle timeout', async (t) => {
  const ip = offLoopbackIp();
  const port = await tcpEcho(t, ip);
  const lp = await loopbackProxy(t, snapshot([await backend(t)], emptyRouting()), { timeouts: { tcpIdleMs: 300 } });
  lp.dst = { ip, port };
  const s = await lp.connect();
  s.write('hello');
  const r = await within(closedByPeer(s), 5000);
  t.is(r?.data, 'hello');
  t.truthy(r, 'closed once idle');
});
