// Kept-alive upstream connections, whatever carries them: a TCP socket, an HBONE CONNECT
// stream, the same-node pipe. An HTTP/2 session assumes what a TCP socket without
// half-close gives it: a server that closes the connection makes it go away. The proxy's
// transports are half-open on purpose (opaque TCP carries half-close), so when a pod closes
// an idle keep-alive connection the pooled side sees only 'end' and would stay in the pool,
// to be reused dead: the next request written into it is never answered (issue 8, finding
// 2). HTTP/1.1 pools are undici's (cluster/pools.ts, and inbound delivery's pod connections
// in proxy/inbound-http.ts), which destroys a connection that sees 'end' by itself, and
// reuses an idle one only one event-loop turn after checking it; for the rest, here:
// - an HTTP/2 session dies with its transport's 'end' (HTTP/2 never half-closes);
// - a connection that saw 'end' is not handed out again (reusable()).
import type http2 from 'node:http2';
import type { Duplex } from 'node:stream';

/** May the connection carry another request? Not once its server ended it. */
export function reusable(socket: Duplex): boolean {
  return !socket.destroyed && !socket.readableEnded;
}

/** The HTTP/2 session over `transport` is destroyed when the transport ends: a peer's FIN ends HTTP/2. */
export function endsWithTransport(session: http2.Http2Session, transport: Duplex): void {
  transport.once('end', () => session.destroy());
}
