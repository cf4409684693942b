// The destination node proxy's inbound side on loopback, for the tests of inbound delivery:
// a listener that hands every accepted socket to deliverInbound and resets it when delivery is
// refused (as the plaintext capture on 15006 does), or an h2c server that hands it every
// CONNECT stream (HBONE's shape without its TLS). The policies go through the real
// control-plane path (YAML → validation → compiler); the "pods" are real servers on 127.0.0.1.
import type { ExecutionContext } from 'ava';
import http2 from 'node:http2';
import net from 'node:net';
import { deliverInbound, type InboundConnection, type InboundOptions, type InboundResult } from '../../agent/proxy/inbound-delivery.js';
import { SecurityIndex } from '../../agent/policy/authorization.js';
import { AuthorizedConnections } from '../../agent/proxy/authorized-connections.js';
import { TcpConnector, type UpstreamConnector } from '../../agent/transport/connector.js';
import { proxyTimeouts, type ProxyTimeouts } from '../../agent/transport/timeouts.js';
import type { Workload } from '../../control/api/snapshot.js';
import { compileYaml, podYaml, spiffe } from './config-yaml.js';

/** The pod every connection is delivered to: shop/server (labels app: server, service account server). */
export const SERVER_POD = podYaml('server', { ns: 'shop', labels: { app: 'server' }, sa: 'server' });

/** Who the connection comes from, as the inbound side knows it. */
export type Peer = Pick<InboundConnection, 'sourcePrincipal' | 'security'>;
export const PLAINTEXT: Peer = { sourcePrincipal: undefined, security: 'none' };
/** A peer proven over mutual TLS (HBONE) to run as `ns`/`sa`. */
export const mtlsFrom = (ns: string, sa: string): Peer => ({ sourcePrincipal: spiffe(ns, sa), security: 'mutual_tls' });

/** 'tcp': the plaintext capture's shape (a socket). 'tunnel': HBONE's (an HTTP/2 CONNECT stream). */
export type Transport = 'tcp' | 'tunnel';

export interface Inbound {
  port: number;
  /** what deliverInbound returned, one per connection or CONNECT stream */
  results: InboundResult[];
  /** connections the listener holds now */
  connections(): Promise<number>;
  /** CONNECT streams ('tunnel') open now on the listener's side */
  openStreams: number;
  /**
   * Applies `policies` (beside SERVER_POD) as a new snapshot would: new connections get them,
   * open ones are authorized again (closed when denied). Resolves how many were closed.
   */
  apply(policies: string[]): number;
  /** the delivered connections this listener holds registered for later policies */
  authorized: AuthorizedConnections;
}

/** The agent's own plain TCP connector, unmarked (tests run without CAP_NET_ADMIN). */
const connector: UpstreamConnector = new TcpConnector(undefined, 5_000);

/**
 * The inbound side for pod shop/server (at 127.0.0.1, its port `port`) under `policies`
 * (YAML documents beside SERVER_POD), every connection from `peer`, closed with the test.
 * `httpService`: a Service of that name declares the port HTTP (request telemetry).
 */
export async function inbound(
  t: ExecutionContext,
  policies: string[],
  port: number,
  peer: Peer,
  transport: Transport = 'tcp',
  opts: { timeouts?: Partial<ProxyTimeouts>; httpService?: string } = {},
): Promise<Inbound> {
  const snapshot = compileYaml([SERVER_POD, ...policies, ...(opts.httpService ? [httpServiceYaml(opts.httpService, port)] : [])]);
  const destination: Workload = { ...snapshot.workloads.find((w) => w.name === 'server')!, ip: '127.0.0.1' };
  let security = SecurityIndex.of(snapshot.security);
  const delivery = (): InboundOptions => {
    const o: InboundOptions = { security, connections: authorized };
    if (opts.timeouts) o.timeouts = proxyTimeouts(opts.timeouts);
    // a port declared HTTP: its requests are read and counted (reporter="destination") with the Service's labels
    if (opts.httpService) o.service = snapshot.services.find((s) => s.name === opts.httpService);
    return o;
  };
  const results: InboundResult[] = [];
  const authorized = new AuthorizedConnections();
  const apply = (next: string[]) => {
    security = SecurityIndex.of(compileYaml([SERVER_POD, ...next]).security);
    return authorized.reauthorize(security);
  };
  const ib = { results, openStreams: 0, apply, authorized } as Inbound;
  const conn = (sourceIp: string, sourcePort: number): InboundConnection => ({ ...peer, destination, port, sourceIp, sourcePort });
  let server: net.Server | http2.Http2Server;
  if (transport === 'tcp') {
    server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {});
      void deliverInbound(socket, conn(socket.remoteAddress!, socket.remotePort!), connector, delivery()).then((r) => {
        results.push(r);
        if (!r.delivered) socket.resetAndDestroy();
      });
    });
  } else {
    const h2 = http2.createServer();
    h2.on('session', (s) => s.on('error', () => {}));
    h2.on('stream', (s: http2.ServerHttp2Stream, headers) => {
      s.on('error', () => {});
      ib.openStreams++;
      s.once('close', () => ib.openStreams--);
      if (headers[':method'] !== 'CONNECT') return void s.respond({ ':status': 405 }, { endStream: true });
      s.respond({ ':status': 200 });
      void deliverInbound(s, conn('127.0.0.1', 1), connector, delivery()).then((r) => {
        results.push(r);
        if (!r.delivered) s.close(http2.constants.NGHTTP2_CONNECT_ERROR);
      });
    });
    server = h2;
  }
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => sessions.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sessions) s.destroy();
    server.close();
  });
  const connections = () => new Promise<number>((r) => server.getConnections((err, n) => r(err ? -1 : n)));
  return Object.assign(ib, { port: (server.address() as net.AddressInfo).port, connections });
}

/** A Service `name` in shop selecting SERVER_POD, its port 80 named `http` to the pod's `targetPort`. */
export function httpServiceYaml(name: string, targetPort: number): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: shop
spec:
  selector: {app: server}
  ports:
  - name: http
    port: 80
    targetPort: ${targetPort}
`;
}

/** Listens with a "pod" server on 127.0.0.1 until the test ends; resolves its port. */
export async function listenLoopback(t: ExecutionContext, server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** A TCP "pod" that echoes every byte; resolves its port. */
export function echoPod(t: ExecutionContext): Promise<number> {
  return listenLoopback(
    t,
    net.createServer((s) => s.pipe(s)),
  );
}

/**
 * Connects, writes `data` (ASCII), ends once the same bytes came back, and reports what came back
 * (latin1: a character per byte, so binary answers compare byte for byte) and whether the
 * socket was reset or closed.
 */
export function rawExchange(port: number, data: string): Promise<{ received: string; closedBy: 'reset' | 'end' }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let received = '';
    s.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      if (received === data) s.end();
    });
    s.on('error', () => resolve({ received, closedBy: 'reset' }));
    s.on('close', (hadError) => resolve({ received, closedBy: hadError ? 'reset' : 'end' }));
    s.write(data);
  });
}
