// What every upstream HTTP/1.1 connection driven through undici's dispatch API shares: the
// L7 engine's per-endpoint Pools (cluster/pools.ts, l7/http1.ts, l7/mirror.ts) and inbound
// delivery's connection to the pod (proxy/inbound-http.ts). Both hand undici a Duplex the
// proxy opened itself (never a socket undici dials), keep connections alive as Node's
// http.Agent did, leave time limits to the proxy's own timeouts, and speak to undici through
// one handler object per request with raw header Buffers (its legacy handler form), so that
// a request allocates no ClientRequest, IncomingMessage or closures.
import type http from 'node:http';
import { Readable, type Duplex } from 'node:stream';
import type { Client } from 'undici';

/** An idle timeout of 0 (none) as undici takes it: a day, as good as never for a kept-alive connection. */
const NO_IDLE_TIMEOUT_MS = 24 * 3600 * 1000;

/** undici's `connect` option as a function: the proxy's own Duplex, or the error that explains why not. */
export type UndiciConnect = (opts: unknown, cb: (err: Error | null, socket: Duplex | null) => void) => void;

/**
 * The Client (and Pool) options both users share: one request at a time per connection
 * (pipelining 1: whoever dispatches bounds requests in flight); undici's own 300 s
 * headers/body timeouts off (the route's, per-try and idle timeouts govern, and a long poll
 * must live); `idleTimeoutMs` (0: none) is the keep-alive timeout, and a server's
 * `Keep-Alive: timeout=N` hint keeps a connection N − 1 s, as Node's agent did (≤ 1 s: not
 * kept); `maxRequestsPerConnection` N (0: unlimited) closes a connection after its N-th
 * request (undici lets its limit + 1 through).
 */
export function undiciHttp1Options(idleTimeoutMs: number, maxRequestsPerConnection: number, connect: UndiciConnect): Client.Options {
  const idle = idleTimeoutMs > 0 ? idleTimeoutMs : NO_IDLE_TIMEOUT_MS;
  return {
    pipelining: 1,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: idle,
    keepAliveMaxTimeout: idle,
    keepAliveTimeoutThreshold: 1000,
    ...(maxRequestsPerConnection > 1 ? { maxRequestsPerClient: maxRequestsPerConnection - 1 } : {}),
    connect: connect as unknown as Client.Options['connect'],
  };
}

/** Whoever feeds a RequestBody: asked for more when undici has read what it has. */
export interface BodySource {
  bodyWanted(): void;
}

/**
 * A request body streamed to undici while it arrives: its source pushes chunks (and pauses
 * its own input when push() says the buffer is full); undici reads them as a stream, pausing
 * while its connection is full, and asking for more resumes the source.
 */
export class RequestBody extends Readable {
  constructor(private readonly source: BodySource) {
    super();
  }

  override _read(): void {
    this.source.bodyWanted();
  }
}

/** undici's raw header (or trailer) Buffers as Node's raw [name, value, …] strings, byte for byte. */
export function latin1(raw: Buffer[]): string[] {
  const out = new Array<string>(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw[i]!.toString('latin1');
  return out;
}

/** `h` (raw headers) without Expect: undici refuses to send one, and Node's server already answered it. */
export function withoutExpect(h: string[]): string[] {
  for (let i = 0; i < h.length; i += 2) {
    if (h[i]!.length === 6 && h[i]!.toLowerCase() === 'expect') {
      h.splice(i, 2);
      i -= 2;
    }
  }
  return h;
}

/**
 * undici refused the request as given (a header it will not send — two Host fields, say —
 * or a body that does not match its Content-Length): the client's fault, not the upstream's.
 */
export function refusedByClient(err: Error): boolean {
  const code = (err as { code?: string }).code;
  return code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED' || code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH';
}

/**
 * Ends `res` with the upstream's trailers (undici's onComplete hands them over as raw
 * Buffers, typed string[]); Node writes them when the response is chunked, and drops them
 * otherwise (an HTTP/1.0 client, a Content-Length response).
 */
export function endWithTrailers(res: http.ServerResponse, trailers: Buffer[] | null): void {
  if (trailers && trailers.length > 0) {
    const raw = latin1(trailers);
    const pairs: [string, string][] = [];
    for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
    res.addTrailers(pairs);
  }
  res.end();
}
