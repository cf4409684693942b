// A kept-alive upstream connection that its server closed is never reused
// (agent/transport/keep-alive.ts, cluster/pools.ts, transport/duplex-pair.ts), on every
// transport the L7 engine pools: the same-node path (an in-memory pipe to the inbound side
// and a TCP connection from there to the pod), HBONE's shape (an HTTP/2 CONNECT stream),
// plain TCP; and at the destination, the pod connection of a workload authorised per
// request. Issue 8, finding 2: the same-node pipe was half-open, so the pooled side only saw
// 'end' when the pod closed an idle keep-alive connection, and the next request on it hung.
// The pods are real Node HTTP servers: with their `Keep-Alive: timeout=` hint (the pool
// closes first), and without one (a server that just closes idle connections).
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { deliverInbound } from '../../agent/proxy/inbound-delivery.js';
import { MeshConnector } from '../../agent/proxy/mesh-connector.js';
import { TcpConnector, UpstreamError, type UpstreamConnector } from '../../agent/transport/connector.js';
import { ResponseFlag } from '../../agent/transport/response-flags.js';
import { emptyRouting } from '../../control/api/snapshot-routing.js';
import { Harness, LoopbackConnector, request, snapshot, TunnelConnector, type Backend } from '../helpers/l7-harness.js';
import { inbound, mtlsFrom } from '../helpers/inbound-listener.js';
import { authorizationPolicy } from '../helpers/config-yaml.js';
import { within } from '../helpers/outbound-proxy.js';
import { eventually } from '../helpers/eventually.js';
import { idleFor } from '../helpers/idle.js';

const CLIENT_IP = '127.0.0.3';

/**
 * A pod: a Node HTTP server that closes an idle keep-alive connection after `idleMs` —
 * announcing it (`Keep-Alive: timeout=`, Node's default) or not (closing without a word,
 * as many servers do).
 */
async function pod(t: ExecutionContext, idleMs: number, announce: boolean): Promise<Backend & { connections: number; closed: number }> {
  const b = { name: 'web-1', port: 0, count: 0, connections: 0, closed: 0 } as Backend & { connections: number; closed: number };
  const server = http.createServer((_req, res) => {
    b.count++;
    res.end('ok');
  });
  if (announce) server.keepAliveTimeout = idleMs;
  else {
    server.keepAliveTimeout = 0; // no hint; the connection is closed by hand once idle
    server.on('connection', (s) => {
      let idle: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => s.destroy(), idleMs);
      };
      s.on('data', () => clearTimeout(idle));
      server.on('request', (req, res) => req.socket === s && res.once('finish', arm));
      s.once('close', () => clearTimeout(idle));
    });
  }
  server.on('connection', (s) => {
    b.connections++;
    s.once('close', () => b.closed++);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.server = server;
  b.port = (server.address() as AddressInfo).port;
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return b;
}

/** No HBONE here: a destination on another node is a test bug. */
const noHbone: UpstreamConnector = {
  connect: () => Promise.reject(new UpstreamError(ResponseFlag.UpstreamConnectionFailure, 'no HBONE in this test')),
};

/** The L7 engine with `transport` to `backend`, its client `client` at CLIENT_IP. */
async function engine(t: ExecutionContext, backend: Backend, transport: 'same-node' | 'tunnel' | 'tcp'): Promise<{ url: string; agent: http.Agent }> {
  const snap = snapshot([backend], emptyRouting(), { clients: [{ name: 'client', ip: CLIENT_IP }] });
  // the pod at the endpoint's address, so that the inbound side dials it there
  for (const w of snap.workloads) if (w.name === backend.name) w.ip = '127.0.0.1';
  let connector: UpstreamConnector;
  if (transport === 'same-node') {
    const podConnector = new TcpConnector(undefined, 5_000);
    connector = new MeshConnector({ node: 'n', hbone: noHbone, tcp: new LoopbackConnector(), local: (s, c) => deliverInbound(s, c, podConnector) });
  } else if (transport === 'tunnel') {
    const tunnel = await new TunnelConnector().start();
    t.teardown(() => tunnel.close());
    connector = tunnel;
  } else connector = new TcpConnector(undefined, 5_000);
  const h = await new Harness(snap, 'http1', connector).listen();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(async () => {
    agent.destroy();
    await h.close();
  });
  return { url: h.url, agent };
}

/** A request that must answer within 15 s (undefined: it hung), however loaded the machine. */
const get = (e: { url: string; agent: http.Agent }) => within(request(e.url, e.agent, { localAddress: CLIENT_IP }), 15_000);

for (const transport of ['same-node', 'tunnel', 'tcp'] as const) {
  test(`${transport}: a request after the pod closed its idle keep-alive connection without a word answers, on a new connection`, async (t) => {
    const p = await pod(t, 300, false);
    const e = await engine(t, p, transport);
    t.is((await get(e))?.status, 200);
    await idleFor(800, "the pooled connection idles past the pod's 300 ms");
    await eventually(() => p.closed === 1, 20_000, 'the pod closing it');
    t.is((await get(e))?.status, 200, 'the second request answered (it hung on the dead pooled connection)');
    t.is(p.connections, 2, 'over a new pod connection');
  });
}

test('same-node: the pool closes an idle connection before the pod does, as the pod announced (Keep-Alive: timeout=2)', async (t) => {
  const p = await pod(t, 2000, true);
  const e = await engine(t, p, 'same-node');
  t.is((await get(e))?.status, 200);
  // Node's pool keeps a connection one second less than the server announced: after 1.5 s
  // it is gone (the pipe has the socket timer a pooled connection needs), so the next
  // request opens another while the pod still holds its end
  await idleFor(1500, "idle past the pool's 1 s, short of the pod's 2 s");
  t.is((await get(e))?.status, 200);
  t.is(p.connections, 2);
});

test.serial('same-node: steady load with idle gaps around the pod’s keep-alive timeout loses no request', async (t) => {
  const p = await pod(t, 2000, true);
  const e = await engine(t, p, 'same-node');
  const statuses: (number | undefined)[] = [];
  // bursts of 1–4 concurrent requests (so that the pool holds several connections), then a
  // pause of 0–2.4 s (so that some of them idle past the pod's timeout and some not)
  const pauses = [0, 300, 1200, 2100, 50, 2400, 900, 1900, 0, 2200];
  for (let i = 0; i < pauses.length; i++) {
    const burst = await Promise.all(Array.from({ length: 1 + (i % 4) }, () => get(e)));
    statuses.push(...burst.map((r) => r?.status));
    await idleFor(pauses[i]!, "a gap around the pod's timeout");
  }
  t.is(statuses.length, 23);
  t.deepEqual(
    statuses.filter((s) => s !== 200),
    [],
    'every request answered 200 (undefined: it hung)',
  );
});

test('destination: a workload authorised per request — after its pod closed the idle connection without a word, the next request on the inbound connection answers', async (t) => {
  const p = await pod(t, 300, false);
  const getOnly = authorizationPolicy('shop', 'get-only', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] });
  for (const transport of ['tcp', 'tunnel'] as const) {
    const ib = await inbound(t, [getOnly], p.port, mtlsFrom('shop', 'client'), transport);
    const conn = await rawConnection(t, ib.port, p.port, transport);
    t.regex((await within(conn.exchange('GET / HTTP/1.1\r\nHost: web\r\n\r\n'), 15_000)) ?? '', /^HTTP\/1\.1 200 /, transport);
    await idleFor(800, "the inbound side's pod connection idles past the pod's 300 ms");
    await eventually(() => p.closed === p.connections, 20_000, 'the pod closing it');
    t.regex((await within(conn.exchange('GET /again HTTP/1.1\r\nHost: web\r\n\r\n'), 15_000)) ?? 'hung', /^HTTP\/1\.1 200 /, `${transport}: the second request answered`);
  }
});

/** One connection to the inbound side (a socket, or a CONNECT stream over h2c), request by request. */
async function rawConnection(t: ExecutionContext, inboundPort: number, podPort: number, transport: 'tcp' | 'tunnel'): Promise<{ exchange(req: string): Promise<string> }> {
  let stream: import('node:stream').Duplex;
  if (transport === 'tcp') {
    stream = net.connect(inboundPort, '127.0.0.1');
  } else {
    const session = http2.connect(`http://127.0.0.1:${inboundPort}`);
    session.on('error', () => {});
    t.teardown(() => session.destroy());
    stream = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${podPort}` });
  }
  stream.on('error', () => {});
  t.teardown(() => stream.destroy());
  let buffered = '';
  let waiting: ((s: string) => void) | undefined;
  stream.on('data', (d: Buffer) => {
    buffered += d.toString('latin1');
    // a whole response: head and its content-length body
    const head = buffered.indexOf('\r\n\r\n');
    const length = Number(/content-length: (\d+)/i.exec(buffered)?.[1] ?? 0);
    if (head >= 0 && buffered.length >= head + 4 + length && waiting) {
      const w = waiting;
      waiting = undefined;
      const r = buffered;
      buffered = '';
      w(r);
    }
  });
  return {
    exchange: (req) =>
      new Promise((resolve) => {
        waiting = resolve;
        stream.write(req);
      }),
  };
}

test('the same-node pipe keeps a socket’s inactivity timer: it fires after the time without a byte, and a byte either way starts it over', async (t) => {
  const { duplexPair } = await import('../../agent/transport/duplex-pair.js');
  const [a, b] = duplexPair() as [import('node:stream').Duplex & { setTimeout(ms: number, cb?: () => void): unknown }, import('node:stream').Duplex];
  for (const end of [a, b]) {
    end.on('error', () => {});
    end.resume();
  }
  // when the timer fired, and when the last byte went either way before it: a loaded machine
  // may stall past the timeout between two bytes, and then the timer is right to fire; what
  // must hold is that it fires only a whole timeout after the last byte
  const TIMEOUT = 1000;
  const fired: { at: number; lastByte: number }[] = [];
  let lastByte = performance.now();
  a.setTimeout(TIMEOUT, () => fired.push({ at: performance.now(), lastByte }));
  // a byte written, then one read, every 100 ms: far from idle for 1 s
  for (let i = 0; i < 4; i++) {
    await idleFor(100, 'activity paced below the timeout');
    lastByte = performance.now();
    if (i % 2 === 0) a.write('x');
    else b.write('y');
  }
  const finalByte = lastByte;
  await eventually(() => fired.some((f) => f.at > finalByte), 20_000, 'the inactivity timer after the last byte');
  for (const f of fired) t.true(f.at - f.lastByte >= TIMEOUT - 1, `fired ${Math.round(f.at - f.lastByte)} ms after the last byte`);
  t.is(fired.filter((f) => f.at > finalByte).length, 1, 'once after the last byte');
  a.destroy();
  b.destroy();
});
