// HTTP/2 (and gRPC) requests through the L7 engine: a downstream stream of Node's h2c server
// over the captured socket, forwarded as a stream on a pooled upstream HTTP/2 session
// (cluster/pools.ts). gRPC status matters for retries: a trailers-only response carries
// grpc-status in its headers; otherwise, when the route retries on gRPC codes, the response
// head is held until the first message or the trailers, so that a failure without messages
// (grpc-status in trailers) can still be retried — nothing has reached the client yet.
import http2 from 'node:http2';
import type { Host } from '../cluster/cluster.js';
import { Exchange, type Engine } from './exchange.js';
import type { ConnInfo } from '../transport/connection.js';
import { applyOps, forwardH2 } from './header-ops.js';
import { ResponseFlag } from '../transport/response-flags.js';
import { retriesOnGrpc } from './retry.js';
import type { ProxyState } from '../state/proxy-state.js';
import { UpstreamError } from '../transport/connector.js';
import type { Http2Pool } from '../cluster/pools.js';
import { h2RequestOptions } from '../transport/http2-request-options.js';

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM } = http2.constants;

const kEx = Symbol('nodemesh.exchange');
const kTry = Symbol('nodemesh.try');

type WithEx = { [kEx]?: Http2Exchange };
type WithTry = { [kTry]?: Try };
type Headers = Record<string, string | string[] | undefined>;

class Try {
  up: http2.ClientHttp2Stream | undefined;
  headers: http2.IncomingHttpHeaders | undefined;
  /** response head held until the first message or the trailers (gRPC retry on status) */
  holding = false;
  early: Buffer[] | undefined;
  trailers: http2.IncomingHttpHeaders | undefined;
  ended = false;
  constructor(readonly ex: Http2Exchange) {}
}

export class Http2Exchange extends Exchange {
  readonly protocol = 'http2' as const;
  private cur: Try | undefined;
  private committed: Try | undefined;

  constructor(
    engine: Engine,
    conn: ConnInfo,
    state: ProxyState,
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
  ) {
    super(engine, conn, state);
    const p = (headers[':path'] as string | undefined) ?? '/';
    const q = p.indexOf('?');
    this.path = q < 0 ? p : p.slice(0, q);
    this.query = q < 0 ? '' : p.slice(q + 1);
    this.method = (headers[':method'] as string | undefined) ?? 'GET';
    this.authority = (headers[':authority'] as string | undefined) ?? (headers.host as string | undefined) ?? '';
    this.scheme = (headers[':scheme'] as string | undefined) ?? 'http';
    const ct = headers['content-type'];
    this.grpc = typeof ct === 'string' && ct.startsWith('application/grpc');
    (stream as WithEx)[kEx] = this;
    stream.on('data', onDownstreamData);
    stream.on('end', onDownstreamEnd);
    stream.on('close', onDownstreamClose);
    stream.on('drain', onDownstreamDrain);
    stream.on('wantTrailers', onWantTrailers);
    stream.on('error', ignore);
  }

  header(name: string): string | undefined {
    const v = this.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  }

  protected mirrorRequest(): { raw: undefined; h2: Headers } {
    const h = forwardH2(this.headers, false);
    applyOps(h, this.dest?.headers?.request);
    applyOps(h, this.route?.headers?.request);
    return { raw: undefined, h2: h };
  }

  protected sendTry(host: Host): void {
    const pool = this.cluster!.http2Pool(host, this.conn);
    const t = new Try(this);
    this.cur = t;
    const session = pool.ready();
    if (session) return this.open(t, pool, session, host);
    // no session to this endpoint yet (or all used up): dial one
    pool.session().then(
      (s) => {
        if (this.cur === t) this.open(t, pool, s, host);
      },
      (err: unknown) => {
        if (this.cur !== t) return;
        this.cur = undefined;
        this.onTryFailure('connect-failure', err instanceof UpstreamError ? err.flag : ResponseFlag.UpstreamConnectionFailure);
      },
    );
  }

  private open(t: Try, pool: Http2Pool, session: http2.ClientHttp2Session, host: Host): void {
    const h: Headers = forwardH2(this.headers, true);
    if (this.upstreamPath !== undefined) h[':path'] = this.upstreamPath;
    if (this.upstreamAuthority !== undefined) h[':authority'] = this.upstreamAuthority;
    applyOps(h, this.dest?.headers?.request);
    applyOps(h, this.route?.headers?.request);
    applyOps(h, this.traceOps);
    applyOps(h, this.clientAddressOps(host));
    const body = this.takeBody();
    let up: http2.ClientHttp2Stream;
    try {
      pool.use(session);
      up = session.request(h as http2.OutgoingHttpHeaders, h2RequestOptions(this.bodyEnded && body.length === 0));
    } catch {
      this.cur = undefined;
      return this.onTryFailure('reset-before-request', ResponseFlag.UpstreamConnectionTermination);
    }
    t.up = up;
    (up as WithTry)[kTry] = t;
    up.on('response', onUpstreamResponse);
    up.on('data', onUpstreamData);
    up.on('trailers', onUpstreamTrailers);
    up.on('end', onUpstreamEnd);
    up.on('close', onUpstreamClose);
    up.on('drain', onUpstreamDrain);
    up.on('error', ignore);
    for (let i = 0; i < body.length; i++) up.write(body[i]);
    if (this.bodyEnded && body.length > 0) up.end();
  }

  protected writeTry(chunk: Buffer): boolean {
    const up = this.cur?.up;
    return up ? up.write(chunk) : true;
  }

  protected endTryBody(): void {
    this.cur?.up?.end();
  }

  protected abortTry(): void {
    const t = this.cur;
    this.cur = undefined;
    if (t?.up && !t.up.closed) t.up.close(NGHTTP2_CANCEL);
  }

  protected discardResponse(): void {
    this.abortTry();
  }

  // ---- upstream events ----------------------------------------------------------------
  // Node emits a client stream's 'response' on the next tick, so the first DATA (and even the
  // trailers) of a response read in one go can come before it: both are kept until the head.
  onResponse(t: Try, headers: http2.IncomingHttpHeaders, flags: number): void {
    if (this.cur !== t) return;
    t.headers = headers;
    const status = Number(headers[':status'] ?? 502);
    const gs = headers['grpc-status'];
    if (gs !== undefined) {
      // trailers-only: the whole answer is in the head
      this.onResponseHead(status, Number(gs));
      return;
    }
    if (this.grpc && status === 200 && !t.early && retriesOnGrpc(this.retry) && this.tries <= this.retry.attempts) {
      const tgs = t.trailers?.['grpc-status'];
      if (tgs !== undefined) {
        // trailers came first, without a message: the status decides
        this.onResponseHead(status, Number(tgs));
        return;
      }
      if ((flags & NGHTTP2_FLAG_END_STREAM) === 0) {
        t.holding = true;
        return;
      }
    }
    this.onResponseHead(status, -1);
  }

  onData(t: Try, chunk: Buffer): void {
    if (this.cur === t && (t.headers === undefined || t.holding)) {
      (t.early ??= []).push(chunk);
      if (t.holding) {
        // a message: the call did not fail before answering; forward everything from here
        t.holding = false;
        this.onResponseHead(Number(t.headers![':status']), -1);
      }
      return;
    }
    if (this.committed !== t) return;
    this.respBytes += chunk.length;
    if (!this.stream.write(chunk)) t.up?.pause();
  }

  onTrailers(t: Try, trailers: http2.IncomingHttpHeaders): void {
    t.trailers = trailers;
    const gs = trailers['grpc-status'];
    if (gs !== undefined && this.committed === t) this.grpcStatus = String(gs);
    if (t.holding) {
      t.holding = false;
      if (this.cur === t) this.onResponseHead(Number(t.headers![':status']), gs !== undefined ? Number(gs) : -1);
    }
  }

  onEnd(t: Try): void {
    t.ended = true;
    if (this.committed !== t || this.phase !== 'responding') return;
    if (!this.stream.destroyed) this.stream.end(); // then wantTrailers, if the head announced them
    if (!this.waitsForTrailers) this.onResponseDone();
  }

  onUpstreamClosed(t: Try): void {
    if (t.ended && t.up?.rstCode === 0) return;
    const code = t.up?.rstCode ?? NGHTTP2_INTERNAL_ERROR;
    if (this.committed === t && this.phase === 'responding') {
      this.addFlag(ResponseFlag.UpstreamReset);
      this.releaseTry(-1);
      this.resetDownstream();
      return this.finish();
    }
    if (this.cur !== t) return;
    this.cur = undefined;
    if (code === NGHTTP2_REFUSED_STREAM) this.onTryFailure('refused-stream', ResponseFlag.UpstreamReset);
    else this.onTryFailure('reset', ResponseFlag.UpstreamReset);
  }

  private waitsForTrailers = false;

  protected commitResponse(): void {
    const t = this.cur!;
    this.committed = t;
    const up = t.headers!;
    const tgs = t.trailers?.['grpc-status'];
    if (tgs !== undefined) this.grpcStatus = String(tgs);
    const h: Headers = forwardH2(up as Headers, false);
    h[':status'] = up[':status'];
    applyOps(h, this.dest?.headers?.response);
    applyOps(h, this.route?.headers?.response);
    if (this.setCookie) h['set-cookie'] = this.setCookie;
    const s = this.stream;
    if (s.destroyed || s.closed) return this.onDownstreamGoneFromUpstream();
    if (up['grpc-status'] !== undefined && t.up?.readableEnded !== false && !t.early) {
      // trailers-only response: forward as one HEADERS frame with END_STREAM
      s.respond(h as http2.OutgoingHttpHeaders, { endStream: true });
      this.onResponseDone();
      return;
    }
    this.waitsForTrailers = this.grpc || up.trailer !== undefined;
    s.respond(h as http2.OutgoingHttpHeaders, { waitForTrailers: this.waitsForTrailers });
    if (t.early) {
      for (const c of t.early) {
        this.respBytes += c.length;
        s.write(c);
      }
      t.early = undefined;
    }
    if (t.ended) this.onEnd(t);
  }

  onWantTrailers(): void {
    const t = this.committed;
    const tr: Headers = t?.trailers ? forwardH2(t.trailers as Headers, false) : {};
    if (this.grpc && tr['grpc-status'] === undefined) tr['grpc-status'] = '0';
    if (!this.stream.destroyed) this.stream.sendTrailers(tr as http2.OutgoingHttpHeaders);
    this.onResponseDone();
  }

  private onDownstreamGoneFromUpstream(): void {
    this.onDownstreamGone();
  }

  protected reply(status: number, body: string, headers: Record<string, string> | undefined, grpc: number): void {
    const s = this.stream;
    if (s.headersSent || s.destroyed || s.closed) {
      this.status = status;
      this.resetDownstream();
      return this.finish();
    }
    if (this.grpc) {
      // gRPC callers get a trailers-only answer with a gRPC status (HTTP 200)
      const code = this.grpcFor(status, grpc);
      this.status = 200;
      this.grpcStatus = String(code);
      s.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': String(code),
          'grpc-message': encodeURIComponent(body.trim()),
          ...headers,
        },
        { endStream: true },
      );
    } else {
      this.status = status;
      s.respond({ ':status': status, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...headers });
      s.end(body);
      this.respBytes += Buffer.byteLength(body);
    }
    this.finish();
  }

  protected resetDownstream(): void {
    if (!this.stream.closed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
  }

  protected pauseBody(): void {
    this.stream.pause();
  }

  protected resumeBody(): void {
    if (!this.stream.readableEnded) this.stream.resume();
  }

  onDrain(): void {
    this.committed?.up?.resume();
  }

  onUpDrain(): void {
    this.resumeBody();
  }
}

function ignore(): void {}
function onDownstreamData(this: http2.ServerHttp2Stream, chunk: Buffer): void {
  (this as WithEx)[kEx]!.onBody(chunk);
}
function onDownstreamEnd(this: http2.ServerHttp2Stream): void {
  (this as WithEx)[kEx]!.onBodyEnd();
}
function onDownstreamClose(this: http2.ServerHttp2Stream): void {
  (this as WithEx)[kEx]!.onClose();
}
function onDownstreamDrain(this: http2.ServerHttp2Stream): void {
  (this as WithEx)[kEx]!.onDrain();
}
function onWantTrailers(this: http2.ServerHttp2Stream): void {
  (this as WithEx)[kEx]!.onWantTrailers();
}
function onUpstreamResponse(this: http2.ClientHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number): void {
  const t = (this as WithTry)[kTry]!;
  t.ex.onResponse(t, headers, flags);
}
function onUpstreamData(this: http2.ClientHttp2Stream, chunk: Buffer): void {
  const t = (this as WithTry)[kTry]!;
  t.ex.onData(t, chunk);
}
function onUpstreamTrailers(this: http2.ClientHttp2Stream, trailers: http2.IncomingHttpHeaders): void {
  const t = (this as WithTry)[kTry]!;
  t.ex.onTrailers(t, trailers);
}
function onUpstreamEnd(this: http2.ClientHttp2Stream): void {
  const t = (this as WithTry)[kTry]!;
  t.ex.onEnd(t);
}
function onUpstreamClose(this: http2.ClientHttp2Stream): void {
  const t = (this as WithTry)[kTry]!;
  t.ex.onUpstreamClosed(t);
}
function onUpstreamDrain(this: http2.ClientHttp2Stream): void {
  (this as WithTry)[kTry]!.ex.onUpDrain();
}
