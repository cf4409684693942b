// HTTP/2 over a Duplex that is not a socket (an HBONE CONNECT stream): Node wraps it in a
// JSStreamSocket, which asserted (ERR_INTERNAL_ASSERTION, the whole process down) when the
// session wrote a frame while the socket's own shutdown — started by the peer's FIN — was
// still flushing. The benchmark found it at the destination agent under h2load and gRPC;
// here the window is made wide on purpose: the transport's end takes 100 ms to go out while
// the server keeps writing. Without the guard in agent/transport/http2-write-fix.ts this
// file's process dies.
import test from 'ava';
import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { jsStreamSocketGuard } from '../../agent/transport/http2-write-fix.js';
import { serveH2cInbound } from '../../agent/proxy/inbound-http.js';
import { SecurityIndex } from '../../agent/policy/authorization.js';
import { listenLoopback } from '../helpers/inbound-listener.js';
import { eventually } from '../helpers/eventually.js';

/** Two Duplexes joined like a socketpair; `b`'s end takes `finalMs` to reach `a` (a FIN behind a full window). */
function pair(finalMs: number): { a: Duplex; b: Duplex } {
  const j: { a?: Duplex; b?: Duplex } = {};
  const a = new Duplex({
    read() {},
    write: (c: Buffer, _e, cb) => (j.b!.push(c), cb()),
    final: (cb) => (j.b!.push(null), cb()),
  });
  const b = new Duplex({
    read() {},
    write: (c: Buffer, _e, cb) => (j.a!.push(c), cb()),
    final: (cb) => void setTimeout(() => (j.a!.push(null), cb()), finalMs),
  });
  j.a = a;
  j.b = b;
  return { a, b };
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);

test('the write guard is in place on this Node (JSStreamSocket as the guard knows it)', (t) => {
  t.true(jsStreamSocketGuard.installed);
});

test.serial("a frame written while the transport's end is still going out ends that session, not the process", async (t) => {
  const { a, b } = pair(100);
  const server = http2.createServer();
  let writes = 0;
  server.on('stream', (s) => {
    s.on('error', () => {});
    s.respond({ ':status': 200 });
    const tick = setInterval(() => {
      if (s.destroyed || s.closed) return clearInterval(tick);
      s.write('x'.repeat(100));
      writes++;
    }, 5);
    s.on('close', () => clearInterval(tick));
  });
  const sessionClosed = new Promise<void>((resolve) =>
    server.on('session', (session) => (session.on('error', () => {}), session.on('close', resolve))),
  );
  server.emit('connection', b);
  const client = http2.connect('http://pair.invalid', { createConnection: () => a as net.Socket });
  client.on('error', () => {});
  t.teardown(() => client.destroy());
  const refusedBefore = jsStreamSocketGuard.writesRefused;
  const req = client.request({ ':path': '/' });
  req.on('error', () => {});
  // the FIN once the body is flowing (its first chunk has arrived)
  await within(new Promise((resolve) => req.once('data', resolve)), 20_000, 'the first chunk of the body');
  req.resume();
  a.end(); // the peer's FIN: the server's socket shuts down, its end takes 100 ms
  await within(sessionClosed, 20_000, "the server's session closed");
  t.true(writes > 0, 'the server was writing when the FIN came');
  t.true(jsStreamSocketGuard.writesRefused > refusedBefore, 'a write came during the shutdown and was refused with EPIPE');
});

test.serial(
  "the destination's h2c path: the peer's FIN while the pod's response streams closes the connection and the pod's session",
  async (t) => {
    // the pod: an h2c server whose response keeps coming every 5 ms until the stream closes
    const pod = http2.createServer();
    const podSessions = new Set<http2.ServerHttp2Session>();
    pod.on('session', (s) => (podSessions.add(s), s.on('close', () => podSessions.delete(s))));
    pod.on('stream', (s) => {
      s.on('error', () => {});
      s.respond({ ':status': 200 });
      const tick = setInterval(() => (s.destroyed || s.closed ? clearInterval(tick) : s.write('y'.repeat(100))), 5);
      s.on('close', () => clearInterval(tick));
    });
    const podPort = await listenLoopback(t, pod as unknown as net.Server);
    const dial = () =>
      new Promise<Duplex>((resolve, reject) => {
        const s = net.connect(podPort, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      });
    const { a, b } = pair(100);
    const refusedBefore = jsStreamSocketGuard.writesRefused;
    const served = serveH2cInbound(b, {
      policy: () => SecurityIndex.empty().forWorkload('shop/server'),
      l4: { sourceIp: '10.0.0.1', destinationPort: podPort, mtls: true, sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/client' },
      connect: dial,
      first: await dial(),
      onDecision: () => {},
      authority: `http://127.0.0.1:${podPort}`,
    });
    const client = http2.connect('http://server.shop', { createConnection: () => a as net.Socket });
    client.on('error', () => {});
    t.teardown(() => client.destroy());
    const req = client.request({ ':path': '/stream' });
    req.on('error', () => {});
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    await within(new Promise((resolve) => req.once('data', resolve)), 20_000, 'the first chunk of the body');
    a.end(); // the source's FIN on the tunnel
    await within(served, 20_000, 'serveH2cInbound resolved (the inbound stream closed)');
    t.true(bytes > 0, 'the response was streaming when the FIN came');
    t.true(jsStreamSocketGuard.writesRefused > refusedBefore, 'a response frame came during the shutdown and was refused');
    await eventually(() => podSessions.size === 0, 20_000, "the pod's session closed");
    t.is(podSessions.size, 0);
  },
);
