// Two ends of a real TCP connection on loopback: what a proxy accepts and the client that dialled it.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface SocketPair {
  client: net.Socket;
  server: net.Socket;
  close(): void;
}

export async function socketPair(): Promise<SocketPair> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect((srv.address() as AddressInfo).port, '127.0.0.1');
  const server = await accepted;
  return {
    client,
    server,
    close() {
      client.destroy();
      server.destroy();
      srv.close();
    },
  };
}
