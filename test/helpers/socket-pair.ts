// Two ends of a real TCP connection on loopback: what a proxy accepts and the client that dialled it.
import type { ExecutionContext } from 'ava';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface SocketPair {
  client: net.Socket;
  server: net.Socket;
  close(): void;
}

/** A connected pair, closed when the test ends. */
export async function socketPair(t: ExecutionContext): Promise<SocketPair> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect((srv.address() as AddressInfo).port, '127.0.0.1');
  const server = await accepted;
  const pair = {
    client,
    server,
    close() {
      client.destroy();
      server.destroy();
      srv.close();
    },
  };
  t.teardown(() => pair.close());
  return pair;
}
