// Every connection the outbound proxy accepts has an end (agent/proxy/outbound.ts,
// agent/l7/servers.ts): connections closed before their first byte, or after part of a
// request, or an HTTP/2 client's FIN, leave no descriptor behind (issue 8, finding 1: they
// stayed in CLOSE-WAIT on 15001 for good). The proxy runs in this process on loopback
// (test/helpers/outbound-proxy.ts), so its descriptors are this process's.
import test from 'ava';
import type net from 'node:net';
import { eventually } from '../helpers/eventually.js';
import { closedByPeer, loopbackProxy, openFds, within } from '../helpers/outbound-proxy.js';
import { snapshot, startBackend, type Backend } from '../helpers/l7-harness.js';
import { emptyRouting as routingConfig } from '../../control/api/snapshot-routing.js';
import { createPki, exchange, req, world, type Pki } from '../helpers/hbone-world.js';
import { idleFor } from '../helpers/idle.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

async function backend(t: { teardown(fn: () => unknown): void }): Promise<Backend> {
  const b = await startBackend({ name: 'web-1', handler: (_q, s) => s.end('ok') });
  t.teardown(() => b.server.close());
  return b;
}

/** Opens `n` connections one after the other and lets `use` write to (and close) each. */
async function churn(connect: () => Promise<net.Socket>, n: number, use: (s: net.Socket) => void): Promise<void> {
  for (let i = 0; i < n; i++) {
    const s = await connect();
    s.on('error', () => {});
    s.resume(); // what the proxy answers is read, so that its FIN is seen and the client closes
    use(s);
  }
}

for (const [what, portName] of [
  ['a Service port declared HTTP', 'http'],
  ['a Service port declared HTTP/2', 'grpc'],
  ['an undeclared port (sniffed)', 'web'],
] as const) {
  test.serial(`${what}: 500 connections closed before their first byte leave no descriptor behind`, async (t) => {
    const lp = await loopbackProxy(t, snapshot([await backend(t)], routingConfig(), { portName }));
    const baseline = openFds();
    // the client closes at once (a FIN: nothing of the proxy's was left unread), as
    // `exec 3<>/dev/tcp/…; exec 3>&-` or a port scanner does
    await churn(() => lp.connect(), 500, (s) => s.destroy());
    const bound = Math.ceil(baseline * 1.1);
    const fds = await eventually(() => (openFds() <= bound && lp.proxy.openConnections === 0 ? openFds() : undefined), 10_000, `descriptors back to ${bound} (baseline ${baseline})`).catch(() => openFds());
    t.true(fds <= bound, `${fds} descriptors open after the clients left; ${baseline} before`);
    t.is(lp.proxy.openConnections, 0, 'the proxy holds none of them');
  });
}

test.serial('a declared HTTP port: connections closed after part of a request or after an HTTP/2 preface are closed too', async (t) => {
  const lp = await loopbackProxy(t, snapshot([await backend(t)], routingConfig()));
  const http2 = await loopbackProxy(t, snapshot([await backend(t)], routingConfig(), { portName: 'grpc' }));
  const baseline = openFds();
  await churn(() => lp.connect(), 100, (s) => s.end('GET / HTTP/1.1\r\nHost: we'));
  await churn(() => http2.connect(), 100, (s) => s.end(Buffer.concat([H2_PREFACE, EMPTY_SETTINGS])));
  const bound = Math.ceil(baseline * 1.1);
  const fds = await eventually(() => (openFds() <= bound ? openFds() : undefined), 10_000, 'descriptors back').catch(() => openFds());
  t.true(fds <= bound, `${fds} descriptors open after the clients left; ${baseline} before`);
});

test('an HTTP/1.1 client that half-closes after a complete request is answered, then the connection ends', async (t) => {
  const lp = await loopbackProxy(t, snapshot([await backend(t)], routingConfig()));
  const s = await lp.connect();
  const closed = closedByPeer(s);
  s.write('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
  await eventually(() => s.bytesRead > 0, 20_000, 'the response');
  s.end();
  const r = await within(closed, 5000);
  t.regex(r?.data ?? '', /^HTTP\/1\.1 200 /);
  t.true(r?.ended, 'the proxy ended the connection after the client did');
});

test('an HTTP/2 client that sends FIN without GOAWAY: the proxy ends the connection', async (t) => {
  const lp = await loopbackProxy(t, snapshot([await backend(t)], routingConfig(), { portName: 'grpc' }));
  const s = await lp.connect();
  const closed = closedByPeer(s);
  s.write(Buffer.concat([H2_PREFACE, EMPTY_SETTINGS]));
  await eventually(() => s.bytesRead > 0, 20_000, "the proxy's SETTINGS");
  s.end();
  const r = await within(closed, 5000);
  t.true(r !== undefined && (r.ended || r.reset), 'the proxy closed its side');
});

test('an HTTP/1.1 client that sends its request and FIN at once (nc -N) gets its response, then the connection ends', async (t) => {
  const slow = await startBackend({ name: 'web-1', handler: (_q, s) => void idleFor(200, "the answer comes after the client's FIN").then(() => s.end('late')) });
  t.teardown(() => slow.server.close());
  const lp = await loopbackProxy(t, snapshot([slow], routingConfig()));
  const s = await lp.connect();
  const closed = closedByPeer(s);
  s.end('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
  const r = await within(closed, 5000);
  t.regex(r?.data ?? '', /^HTTP\/1\.1 200 [^]*late$/);
  t.true(r?.ended);
});

let pki: Pki;
test.before(async () => {
  pki = await createPki();
});

test('HBONE (15008): a connection without streams is closed by the server after its idle timeout; one carrying a quiet tunnel is not', async (t) => {
  // the client's pool would keep both for a minute: the server's end comes first
  // 1 s: a new connection's first stream reaches the server well within it on a loaded machine
  const w = await world(t, pki, { serverIdleMs: 1_000, idleMs: 60_000 });
  const quiet = await w.connector.connect(req(w.client, w.web, w.webPort));
  const echo = (msg: string) => new Promise<string>((r) => {
    quiet.once('data', (d: Buffer) => r(d.toString()));
    quiet.write(msg);
  });
  t.is(await echo('a'), 'echo:a');
  const once = await w.connector.connect(req(w.client2, w.web, w.webPort));
  t.is(await exchange(once, 'b'), 'echo:b'); // client2's connection now carries no stream
  t.is(w.inbound.connections, 2);
  await eventually(() => w.inbound.connections === 1, 20_000, "the idle connection closed by node-b's server");
  await idleFor(2_000, "the quiet tunnel held past twice the server's idle timeout");
  t.is(w.inbound.connections, 1, 'the one with an open tunnel stays');
  t.is(await echo('c'), 'echo:c', 'and its tunnel still carries bytes');
});
