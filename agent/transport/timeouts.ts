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
//
// Node applies an HTTP server's `headersTimeout` only to servers that listen: its sweep of
// connections starts on 'listening'. The proxy's HTTP servers never listen (captured
// connections are handed to them), so `enforceServerTimeouts` starts that sweep itself: one
// unref'ed interval per server walks the connections waiting for a head (in C++, no timer
// per connection or request). Idle timeouts are socket timeouts, one per connection.
import type http from 'node:http';
import type http2 from 'node:http2';

export interface ProxyTimeouts {
  /** a downstream HTTP/1.1 request head, from its first byte (the first request: from accept); also the first byte of a declared HTTP port */
  requestHeadersMs: number;
  /** a downstream HTTP connection with no request in flight */
  httpIdleMs: number;
  /** an opaque TCP connection with no byte either way, where no DestinationRule says otherwise */
  tcpIdleMs: number;
}

export const DEFAULT_TIMEOUTS: Readonly<ProxyTimeouts> = Object.freeze({
  requestHeadersMs: 60_000,
  httpIdleMs: 3_600_000,
  tcpIdleMs: 3_600_000,
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

const kOpenStreams = Symbol('nodemesh.openStreams');
const kSession = Symbol('nodemesh.session');
type Counted = http2.ServerHttp2Session & { [kOpenStreams]: number };

/**
 * A server HTTP/2 session is closed (GOAWAY, then the connection once its streams are done)
 * after `idleMs` without a frame while it has no stream open: Envoy's idle timeout, which
 * fires "only when there are no active streams". One socket timeout per session; a stream
 * costs a counter and a listener, no closure.
 */
export function closeIdleSession(session: http2.ServerHttp2Session, idleMs: number): void {
  if (!(idleMs > 0)) return;
  (session as Counted)[kOpenStreams] = 0;
  session.on('stream', onSessionStream);
  session.setTimeout(idleMs, onSessionIdle);
}

function onSessionStream(this: Counted, stream: http2.ServerHttp2Stream): void {
  this[kOpenStreams]++;
  (stream as http2.ServerHttp2Stream & { [kSession]?: Counted })[kSession] = this;
  stream.once('close', onSessionStreamClose);
}

function onSessionStreamClose(this: http2.ServerHttp2Stream & { [kSession]?: Counted }): void {
  const s = this[kSession];
  if (s) s[kOpenStreams]--;
}

function onSessionIdle(this: Counted): void {
  if (this[kOpenStreams] === 0 && !this.closed && !this.destroyed) this.close();
}
