// Kept-alive upstream connections, whatever carries them: a TCP socket, an HBONE CONNECT
// stream, the same-node pipe. (The L7 engine's own HTTP/1.1 pools are undici's, which
// destroys a connection that sees 'end' by itself: cluster/pools.ts; the http.Agent pools
// that remain are inbound delivery's, proxy/inbound-http.ts.) An http.Agent and an HTTP/2 session both
// assume what a TCP socket without half-close gives them: a server that closes the
// connection makes it go away. The proxy's transports are half-open on purpose (opaque TCP
// carries half-close), so when a pod closes an idle keep-alive connection the pooled side
// sees only 'end' and would stay in the pool, to be reused dead: the next request written
// into it is never answered (issue 8, finding 2). Here, once and for every pool:
// - an idle pooled connection that sees 'end' is destroyed at once (it leaves the pool);
//   one that is busy is left to Node's client, which reads the end of the response or
//   fails the request ('socket hang up');
// - a connection that saw 'end' is never kept alive for another request;
// - an HTTP/2 session dies with its transport's 'end' (HTTP/2 never half-closes);
// - a Duplex gets the socket methods http.Agent calls (setTimeout is real where the
//   transport has one — a socket, an HTTP/2 stream, the same-node pipe — so the agent's idle
//   timeout and a server's `Keep-Alive: timeout=` hint apply), and no empty chunk in its
//   corked writes (http2-write-fix.ts).
import type http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { withoutEmptyWrites } from './http2-write-fix.js';

type SocketLike = Duplex & {
  setKeepAlive?: (...a: unknown[]) => unknown;
  setNoDelay?: (...a: unknown[]) => unknown;
  setTimeout?: (...a: unknown[]) => unknown;
  ref?: () => unknown;
  unref?: () => unknown;
  /** set by Node's HTTP client while a request uses the socket; null when it is free */
  _httpMessage?: unknown;
};

const kPooled = Symbol('nodemesh.pooled');

/** `d` as a pooled HTTP/1.1 connection (see above); idempotent. */
export function pooledSocket<D extends Duplex>(d: D): D {
  const s = d as SocketLike & { [kPooled]?: true };
  if (s[kPooled]) return d;
  s[kPooled] = true;
  const noop = () => s;
  s.setKeepAlive ??= noop;
  s.setNoDelay ??= noop;
  s.ref ??= noop;
  s.unref ??= noop;
  s.setTimeout ??= noop;
  s.on('end', onPooledEnd);
  return withoutEmptyWrites(d);
}

function onPooledEnd(this: SocketLike): void {
  // free in the pool: its server closed it; it must not be handed to another request
  if (!this._httpMessage) this.destroy();
}

/** May the connection carry another request? Not once its server ended it. */
export function reusable(socket: Duplex): boolean {
  return !socket.destroyed && !socket.readableEnded;
}

/** The HTTP/2 session over `transport` is destroyed when the transport ends: a peer's FIN ends HTTP/2. */
export function endsWithTransport(session: http2.Http2Session, transport: Duplex): void {
  transport.once('end', () => session.destroy());
}
