// The L7 engine's entry, at the source node proxy: Node's HTTP/1.1 and h2c servers, never
// listening on a port of their own — the outbound proxy hands them each captured connection
// of a Service port that speaks HTTP (`emit('connection', socket)`), with the bytes it sniffed
// put back. Each request becomes an exchange (http1.ts, http2.ts) in the proxy state current
// at its start; every exchange of the proxy shares one cluster set, kept across states.
// WebSocket and other HTTP/1.1 upgrades are routed like a TCP connection (tcp-route.ts), then
// tunnelled as bytes.
//
// Timeouts (transport/timeouts.ts): a request head within requestHeadersMs (Node's own sweep,
// started for these servers that never listen), an idle keep-alive connection or an HTTP/2
// session without streams closed after httpIdleMs, an upgraded tunnel after the TCP idle
// timeout. A client's FIN ends its connection: at once for HTTP/2, after the responses to
// the requests it sent for HTTP/1.1.
import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../../common/clock.js';
import { logger } from '../../common/log.js';
import { Http1Exchange } from './http1.js';
import { Http2Exchange } from './http2.js';
import type { Engine } from './exchange.js';
import type { ConnInfo } from '../transport/connection.js';
import { forwardRaw } from './header-ops.js';
import { planTcp } from './tcp-route.js';
import { ClusterSet } from '../cluster/cluster-set.js';
import { connectWithTimeout, type UpstreamConnector } from '../transport/connector.js';
import { relay } from '../transport/relay.js';
import { closeIdleSession, enforceServerTimeouts, proxyTimeouts, type ProxyTimeouts } from '../transport/timeouts.js';
import type { ProxyState } from '../state/proxy-state.js';

const log = logger('agent/l7');

const kConn = Symbol('nodemesh.conn');
type WithConn = { [kConn]?: ConnInfo };

export interface L7ServersOptions {
  connector: UpstreamConnector;
  /** the current proxy state; read at the start of every request */
  state: () => ProxyState;
  clock?: Clock;
  random?: () => number;
  /** the phases' timeouts (transport/timeouts.ts defaults) */
  timeouts?: Partial<ProxyTimeouts>;
  /** the node the proxy runs on (cluster/locality.ts) */
  node?: string;
}

export class L7Servers implements Engine {
  readonly http1: http.Server;
  readonly http2: http2.Http2Server;
  readonly clusters: ClusterSet;
  readonly random: () => number;
  private readonly clock: Clock;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly timeouts: ProxyTimeouts;

  constructor(private readonly opts: L7ServersOptions) {
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.clusters = new ClusterSet(opts.connector, this.clock, opts.node);
    this.timeouts = proxyTimeouts(opts.timeouts);
    this.http1 = http.createServer({ noDelay: true });
    enforceServerTimeouts(this.http1, this.timeouts);
    // a client that half-closes after its request still gets the response, then the
    // connection ends (Node's default ends it at once, dropping the response)
    (this.http1 as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.http1.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const conn = (req.socket as WithConn)[kConn]!;
      new Http1Exchange(this, conn, opts.state(), req, res).start();
    });
    this.http1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.http1.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
      socket.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    });
    this.http2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
    this.http2.on('session', (s: http2.ServerHttp2Session) => {
      this.sessions.add(s);
      s.once('close', () => this.sessions.delete(s));
      s.on('error', () => {});
      closeIdleSession(s, this.timeouts);
    });
    this.http2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      const conn = (stream.session?.socket as unknown as WithConn)[kConn];
      if (!conn) {
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
      }
      new Http2Exchange(this, conn, opts.state(), stream, headers).start();
    });
  }

  now(): number {
    return this.clock.monotonic();
  }

  serve(socket: Socket, conn: ConnInfo, protocol: 'http1' | 'http2'): void {
    (socket as WithConn)[kConn] = conn;
    // HTTP/2 never half-closes: a client's FIN ends the session (Node's HTTP/1.1 server ends
    // a half-closed connection itself, once its responses are written)
    if (protocol === 'http2') socket.allowHalfOpen = false;
    if (protocol === 'http2') this.http2.emit('connection', socket);
    else this.http1.emit('connection', socket);
    socket.resume();
  }

  /**
   * An HTTP/1.1 upgrade (WebSocket): routed to an endpoint like a request (no retries: the
   * connection is not replayable), then the request head and both directions piped.
   */
  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const conn = (req.socket as WithConn)[kConn]!;
    socket.on('error', () => {});
    const plan = planTcp(this, this.opts.state(), conn);
    if (plan.flag !== '-') {
      socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      plan.closed();
      return;
    }
    const dial = { source: conn.source, sourceAddress: conn.sourceAddress, sourcePort: conn.sourcePort, ip: plan.ip, port: plan.port, destination: plan.destination };
    connectWithTimeout(this.opts.connector, dial, plan.connectTimeoutMs).then(
      (up) => {
        plan.connected();
        const raw = forwardRaw(req.rawHeaders, []);
        let headLines = `${req.method} ${req.url} HTTP/1.1\r\n`;
        for (let i = 0; i < raw.length; i += 2) headLines += `${raw[i]}: ${raw[i + 1]}\r\n`;
        // the upgrade itself is hop-by-hop but is what this request asks for
        headLines += `connection: upgrade\r\nupgrade: ${req.headers.upgrade}\r\n\r\n`;
        up.write(headLines);
        if (head.length > 0) up.write(head);
        up.on('error', () => socket.destroy());
        socket.on('error', () => up.destroy());
        up.once('close', () => {
          plan.closed();
          socket.destroy();
        });
        socket.once('close', () => up.destroy());
        // a tunnel now: the TCP idle timeout (the socket's timer sees both directions)
        (socket as Socket).setTimeout(plan.idleTimeoutMs || this.timeouts.tcpIdleMs);
        socket.once('timeout', () => socket.destroy());
        relay(up, socket);
      },
      (err: unknown) => {
        plan.failed();
        plan.closed();
        log.debug({ err }, 'upgrade: upstream connect failed');
        socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      },
    );
  }

  debug(): Record<string, unknown> {
    return this.clusters.debug();
  }

  /** Cuts every downstream connection and closes the clusters (their pools and timers). */
  async close(): Promise<void> {
    this.http1.closeAllConnections();
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
    this.clusters.close();
    log.debug('L7 engine closed');
  }
}
