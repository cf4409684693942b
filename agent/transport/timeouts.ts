// How long each phase of a connection through the node proxy may wait, in one place. A
// phase without a timeout is a descriptor any pod can hold for good, so every one has one,
// each with the default an Envoy (Istio) user expects:
//
// | phase | default | Envoy / Istio |
// | --- | --- | --- |
// | a downstream HTTP/1.1 request's head, from its first byte (for the first request of a connection: from accept, so it bounds the wait for the first byte too) | 60 s | `request_headers_timeout` is off by default in Envoy, which bounds slow heads with per-connection buffer limits instead; Node's own default (`headersTimeout`) is 60 s, and off means a slowloris holds a descriptor for ever |
// | a downstream HTTP connection with no request in flight (HTTP/1.1 keep-alive, an HTTP/2 connection without streams) | 1 h | `idle_timeout` ("The default idle timeout if not otherwise specified is 1 hour") |
// | an opaque TCP connection with no byte either way | 1 h | tcp_proxy `idle_timeout` (1 h), Istio's DestinationRule `tcp.idleTimeout` (the cluster's value applies to connections to a Service) |
// | an upstream connect (TCP, TLS, HTTP/2 SETTINGS, CONNECT answer) | 10 s | Istio's `connectTimeout` (the cluster's; transport/connector.ts, hbone/client.ts) |
// | an upstream pooled connection with no request in flight | 1 h | Istio's `http.idleTimeout` (the cluster's; cluster/pools.ts), shortened by a server's `Keep-Alive: timeout=` |
// | the first line of an inbound stream to a workload whose policies test HTTP attributes | 60 s, then it is authorised as TCP | Istio's protocol sniffing: past its timeout a stream is TCP |
// | a downstream HTTP/2 connection quiet for 60 s is sent a PING, which must be answered within 10 s, else it is closed | 60 s / 10 s | Envoy's `connection_keepalive` (interval, timeout), off by default in Istio; needed here, see below |
//
// Node applies an HTTP server's `headersTimeout` only to servers that listen: its sweep of
// connections starts on 'listening'. The proxy's HTTP servers never listen (captured
// connections are handed to them), so `enforceServerTimeouts` starts that sweep itself: one
// unref'ed interval per server walks the connections waiting for a head (in C++, no timer
// per connection or request). Idle timeouts are socket timeouts, one per connection.
//
// Why a keepalive on the proxy's HTTP/2 servers: after a connection error (a frame longer
// than SETTINGS_MAX_FRAME_SIZE, DATA on an idle stream: a few bytes any pod can send) Node's
// HTTP/2 session sends its GOAWAY and stops reading the socket for good, and tells
// JavaScript nothing; RFC 9113 §5.4.1 says the endpoint MUST then close the connection, but
// the socket stays open, the client's FIN unread, until the idle timeout (1 h) — a
// descriptor held per 20 bytes sent. Such a session never sends the PING it is asked for,
// so the keepalive finds it (and any peer gone silent) within interval + timeout.
import type http from 'node:http';
import type http2 from 'node:http2';

export interface ProxyTimeouts {
  /** a downstream HTTP/1.1 request head, from its first byte (the first request: from accept); also the first byte of a declared HTTP port */
  requestHeadersMs: number;
  /** a downstream HTTP connection with no request in flight */
  httpIdleMs: number;
  /** an opaque TCP connection with no byte either way, where no DestinationRule says otherwise */
  tcpIdleMs: number;
  /** a downstream HTTP/2 connection quiet this long is sent a PING */
  http2KeepaliveIntervalMs: number;
  /** the PING's answer must come within this, else the connection is closed */
  http2KeepaliveTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: Readonly<ProxyTimeouts> = Object.freeze({
  requestHeadersMs: 60_000,
  httpIdleMs: 3_600_000,
  tcpIdleMs: 3_600_000,
  http2KeepaliveIntervalMs: 60_000,
  http2KeepaliveTimeoutMs: 10_000,
});

/** The defaults with `over` applied (undefined fields keep their default). */
export function proxyTimeouts(over: Partial<ProxyTimeouts> = {}): ProxyTimeouts {
  const t = { ...DEFAULT_TIMEOUTS };
  for (const k of Object.keys(t) as (keyof ProxyTimeouts)[]) if (over[k] !== undefined) t[k] = over[k]!;
  return t;
}

/**
 * An HTTP/1.1 server fed with `emit('connection')`: a request head must arrive within
 * `requestHeadersMs` of its first byte (of the connection's start for the first request),
 * else 408 and the connection closes; an idle keep-alive connection closes after
 * `httpIdleMs`. No request timeout: a streamed upload is the route's business.
 */
export function enforceServerTimeouts(server: http.Server, t: ProxyTimeouts): void {
  server.headersTimeout = t.requestHeadersMs;
  server.requestTimeout = 0;
  server.keepAliveTimeout = t.httpIdleMs;
  // how often the sweep runs: a head is cut between 1× and 1.25× its timeout
  (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = Math.max(100, Math.min(5_000, Math.floor(t.requestHeadersMs / 4)));
  // Node starts tracking connections (and closeAllConnections works) on 'listening' only
  server.emit('listening');
}

/** What a server HTTP/2 session's timers need. */
export type SessionTimeouts = Pick<ProxyTimeouts, 'httpIdleMs' | 'http2KeepaliveIntervalMs' | 'http2KeepaliveTimeoutMs'>;

const kWatch = Symbol('nodemesh.sessionWatch');
const kSession = Symbol('nodemesh.session');

/** A session's streams and quiet time, kept on the session (no closure per stream). */
interface SessionWatch {
  readonly t: SessionTimeouts;
  /** the session's timer period: the shorter of the keepalive interval and the idle timeout */
  readonly periodMs: number;
  openStreams: number;
  /** when the last stream closed (or the session started) */
  idleSince: number;
  /** the unanswered PING's deadline */
  pingDeadline: NodeJS.Timeout | undefined;
}
type Watched = http2.ServerHttp2Session & { [kWatch]: SessionWatch };

/**
 * A server HTTP/2 session is closed (GOAWAY, then the connection once its streams are done)
 * after `httpIdleMs` while it has no stream open: Envoy's idle timeout, which fires "only
 * when there are no active streams". Quiet for the keepalive interval (streams open or not),
 * it is sent a PING, and destroyed when no answer comes within the keepalive timeout: a
 * peer gone silent, or a session that gave up after a connection error (see above). One
 * socket timer per session and one per unanswered PING; a stream costs a counter and a
 * listener, no closure.
 */
export function closeIdleSession(session: http2.ServerHttp2Session, t: SessionTimeouts): void {
  const periods = [t.httpIdleMs, t.http2KeepaliveIntervalMs].filter((ms) => ms > 0);
  if (periods.length === 0) return;
  const watch: SessionWatch = { t, periodMs: Math.min(...periods), openStreams: 0, idleSince: performance.now(), pingDeadline: undefined };
  (session as Watched)[kWatch] = watch;
  session.on('stream', onSessionStream);
  session.on('timeout', onSessionQuiet);
  session.once('close', onSessionClose);
  session.setTimeout(watch.periodMs);
}

function onSessionStream(this: Watched, stream: http2.ServerHttp2Stream): void {
  this[kWatch].openStreams++;
  (stream as http2.ServerHttp2Stream & { [kSession]?: Watched })[kSession] = this;
  stream.once('close', onSessionStreamClose);
}

function onSessionStreamClose(this: http2.ServerHttp2Stream & { [kSession]?: Watched }): void {
  const s = this[kSession];
  if (!s) return;
  const w = s[kWatch];
  if (--w.openStreams === 0) w.idleSince = performance.now();
}

/** No frame for the period (Node's session timer fires once, until activity re-arms it). */
function onSessionQuiet(this: Watched): void {
  const w = this[kWatch];
  if (this.closed || this.destroyed || w.pingDeadline) return;
  // idle long enough (1 ms of slack: a timer may fire within its millisecond)
  const idleMs = performance.now() - w.idleSince;
  if (w.openStreams === 0 && w.t.httpIdleMs > 0 && idleMs + 1 >= w.t.httpIdleMs) return void this.close();
  if (!(w.t.http2KeepaliveIntervalMs > 0)) {
    // no keepalive: the next frame re-arms the timer; without streams, wait out the rest
    if (w.openStreams === 0) this.setTimeout(Math.max(1, w.t.httpIdleMs - idleMs));
    return;
  }
  const session = this;
  w.pingDeadline = setTimeout(() => session.destroy(), w.t.http2KeepaliveTimeoutMs || w.periodMs).unref();
  try {
    this.ping(function onKeepaliveAck(err) {
      clearTimeout(w.pingDeadline);
      w.pingDeadline = undefined;
      if (err || session.destroyed || session.closed) return;
      // quiet again from now: the next check after a period, or when the idle timeout is due
      const due = w.openStreams === 0 && w.t.httpIdleMs > 0 ? w.t.httpIdleMs - (performance.now() - w.idleSince) : Infinity;
      session.setTimeout(Math.max(1, Math.min(w.periodMs, due)));
    });
  } catch {
    session.destroy(); // too many PINGs in flight (the peer's) or no handle: nothing to keep alive
  }
}

function onSessionClose(this: Watched): void {
  clearTimeout(this[kWatch].pingDeadline);
}
