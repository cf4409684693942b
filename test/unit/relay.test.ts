// transport/relay.ts joins two duplexes both ways as two pipe() calls did: bytes both ways,
// half-close carried, back-pressure, a sniffer's paused stream resumed — over real loopback
// sockets: client ⇄ [proxy's accepted socket ⇄ proxy's upstream socket] ⇄ server.
import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { Duplex, PassThrough } from 'node:stream';
import { relay, relayedBytes } from '../../agent/transport/relay.js';

interface Chain {
  client: net.Socket;
  /** the far server's side of the proxy's upstream connection */
  server: net.Socket;
  /** the proxy's two sockets, joined by the relay */
  accepted: net.Socket;
  upstream: net.Socket;
}

async function listen(onConnection: (s: net.Socket) => void): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/**
 * client → proxy → far server, the proxy relaying; `beforeRelay` sees the accepted socket
 * first. `client` is connected at once; `joined` resolves once the proxy relays. Everything
 * is closed at the test's end.
 */
async function chain(
  t: ExecutionContext,
  beforeRelay?: (accepted: net.Socket) => Promise<void>,
): Promise<{ client: net.Socket; joined: Promise<Chain> }> {
  const sockets: net.Socket[] = [];
  const servers: net.Server[] = [];
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    for (const s of servers) s.close();
  });
  let atFar!: (s: net.Socket) => void;
  const farSocket = new Promise<net.Socket>((resolve) => (atFar = resolve));
  const far = await listen((s) => (sockets.push(s), atFar(s)));
  let relayed!: (pair: [net.Socket, net.Socket]) => void;
  const pair = new Promise<[net.Socket, net.Socket]>((resolve) => (relayed = resolve));
  const proxy = await listen((accepted) => {
    sockets.push(accepted);
    void (async () => {
      if (beforeRelay) await beforeRelay(accepted);
      const upstream = net.connect({ port: far.port, host: '127.0.0.1', allowHalfOpen: true });
      sockets.push(upstream);
      await once(upstream, 'connect');
      relay(accepted, upstream);
      relayed([accepted, upstream]);
    })();
  });
  servers.push(far.server, proxy.server);
  const client = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
  sockets.push(client);
  await once(client, 'connect');
  const joined = Promise.all([farSocket, pair]).then(([server, [accepted, upstream]]) => ({ client, server, accepted, upstream }));
  return { client, joined };
}

const readAll = async (s: net.Socket): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  await once(s, 'end');
  return Buffer.concat(chunks);
};

test('bytes go both ways and each side’s end is carried to the other while the other direction goes on', async (t) => {
  const c = await (await chain(t)).joined;
  const atServer = readAll(c.server);
  c.client.end('request bytes');
  t.is((await atServer).toString(), 'request bytes', 'the server got the bytes and the FIN');
  // half-closed: the response direction still flows
  const atClient = readAll(c.client);
  c.server.write('response ');
  c.server.end('bytes');
  t.is((await atClient).toString(), 'response bytes');
});

test('a slow reader pauses the side that writes into it, and every byte arrives in order', async (t) => {
  const c = await (await chain(t)).joined;
  c.server.pause(); // reads nothing yet
  const payload = randomBytes(32 * 1024 * 1024);
  c.client.end(payload);
  // the upstream socket's buffer fills, so the relay stops reading from the client's socket
  const deadline = Date.now() + 10_000;
  while (!c.accepted.isPaused() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.true(c.accepted.isPaused(), 'the accepted socket was never paused');
  t.true(
    c.upstream.writableLength <= c.upstream.writableHighWaterMark + 64 * 1024,
    `the proxy buffered ${c.upstream.writableLength} bytes`,
  );
  c.server.resume();
  const got = await readAll(c.server);
  t.is(got.length, payload.length);
  t.is(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(payload).digest('hex'));
});

test('a stream a sniffer paused and gave bytes back to is resumed, its given-back bytes first', async (t) => {
  const { client, joined } = await chain(t, async (accepted) => {
    // what protocol detection does: read the first bytes, pause, give them back
    const [first] = (await once(accepted, 'data')) as [Buffer];
    accepted.pause();
    accepted.unshift(first);
  });
  client.write('first bytes;');
  const c = await joined;
  const atServer = readAll(c.server);
  c.client.end('the rest');
  t.is((await atServer).toString(), 'first bytes;the rest');
});

test('a side whose end came before it was joined (a FIN read while sniffing) ends its peer at once', async (t) => {
  const { client, joined } = await chain(t, async (accepted) => {
    await once(accepted, 'end'); // the client's FIN, read before the relay exists
  });
  client.end();
  const c = await joined;
  t.is((await readAll(c.server)).length, 0, 'the far server got the FIN');
  // and the other direction still flows back to the client
  const atClient = readAll(c.client);
  c.server.end('late answer');
  t.is((await atClient).toString(), 'late answer');
});

test('relayedBytes counts what the relay moved each way, given-back bytes once', async (t) => {
  const { client, joined } = await chain(t, async (accepted) => {
    const [first] = (await once(accepted, 'data')) as [Buffer];
    accepted.pause();
    accepted.unshift(first); // read again by the relay: counted once
  });
  client.write('12345');
  const c = await joined;
  const atServer = readAll(c.server);
  client.end('678');
  t.is((await atServer).length, 8);
  const atClient = readAll(c.client);
  c.server.end(Buffer.alloc(100_000));
  t.is((await atClient).length, 100_000);
  t.deepEqual(relayedBytes(c.accepted), { read: 8, written: 100_000 });
  t.deepEqual(relayedBytes(c.upstream), { read: 100_000, written: 8 });
  t.deepEqual(relayedBytes(new PassThrough()), { read: 0, written: 0 }, 'a stream no relay joined');
});

test('every relay shares the same handlers: no closure per connection', (t) => {
  const pairs = [0, 1].map(() => [new PassThrough(), new PassThrough()] as [Duplex, Duplex]);
  for (const [a, b] of pairs) relay(a, b);
  for (const event of ['data', 'end', 'drain']) {
    const fns = pairs.flat().map((s) => s.listeners(event));
    t.true(
      fns.every((l) => l.length === 1 && l[0] === fns[0]![0]),
      `'${event}': one listener per stream, the same function for all`,
    );
  }
  for (const s of pairs.flat()) s.destroy();
});
