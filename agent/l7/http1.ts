// HTTP/1.1 requests through the L7 engine: the downstream side is Node's HTTP/1.1 server
// parser over the captured socket, the upstream side an undici Pool (cluster/pools.ts) driven
// through its dispatch API: the try is the dispatch handler, so a request allocates no
// http.ClientRequest, IncomingMessage or closures. Headers stay in raw form end to end (the
// upstream's as latin1 strings of its raw Buffers); every downstream event handler is a
// module-level function that finds its exchange through a symbol on the emitter.
//
// Bodies: a request without one is sent at once; one complete when the try starts (a retry,
// or a body that arrived while the request waited for admission) goes as one Buffer with its
// length; otherwise the body streams through a RequestBody (transport/undici-http1.ts), with
// back-pressure both ways (the downstream request pauses while the upstream connection is
// full). The response body streams to the client; a full client buffer pauses undici's parser
// until 'drain'. HTTP/1.1 response trailers are forwarded when the client's response is
// chunked (Node drops them otherwise); 1xx responses are not forwarded.
// WebSocket and other upgrades never come here: servers.ts tunnels them as bytes.
import http from 'node:http';
import type { Destination, HttpRoute } from '../../control/api/snapshot-routing.js';
import type { Host } from '../cluster/cluster.js';
import { Exchange, type Engine } from './exchange.js';
import type { ConnInfo } from '../transport/connection.js';
import { forwardRaw } from './header-ops.js';
import { ResponseFlag } from '../transport/response-flags.js';
import type { ProxyState } from '../state/proxy-state.js';
import { UpstreamError } from '../transport/connector.js';
import { endWithTrailers, latin1, refusedByClient, RequestBody, withoutExpect, type BodySource } from '../transport/undici-http1.js';

const kEx = Symbol('nodemesh.exchange');

type WithEx = { [kEx]?: Http1Exchange };

/** What the exchange gives up a try with (undici passes it back to onError, which ignores it). */
const ABORTED = new Error('try abandoned by the proxy');

/** One try: undici's dispatch handler (its legacy form, which hands over raw header Buffers). */
class Try {
  abort: ((err?: Error) => void) | null = null;
  /** undici's resume, for a response paused by back-pressure */
  resume: (() => void) | null = null;
  /** the exchange gave it up (it may not be connected yet: abort on connect) */
  aborted = false;
  /** a response head came */
  began = false;
  /** undici has the request (an error before that is deferred a tick) */
  dispatched = false;
  status = 0;
  raw: Buffer[] | null = null;
  body: RequestBody | null = null;

  constructor(readonly ex: Http1Exchange) {}

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.aborted) abort(ABORTED);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    // 1xx (102, 103 Early Hints): undici reports them too; the response is the next head, as
    // Node's client had it (a 100 Continue the client asked for was the proxy's own)
    if (status < 200) return true;
    this.resume = resume;
    return this.ex.onTryHeaders(this, status, raw);
  }

  onData(chunk: Buffer): boolean {
    return this.ex.onTryData(this, chunk);
  }

  // typed string[] by undici, Buffers in fact (its parser's raw trailer fields)
  onComplete(trailers: string[] | null): void {
    this.ex.onTryComplete(this, trailers as unknown as Buffer[] | null);
  }

  onError(err: Error): void {
    if (this.dispatched) this.ex.onTryError(this, err);
    else process.nextTick(deferredError, this, err);
  }

  onUpgrade(): void {
    // never asked for: upgrades are tunnelled by servers.ts
  }
}

function deferredError(t: Try, err: Error): void {
  t.ex.onTryError(t, err);
}

/** Headers the proxy consumed itself and does not forward (it answered Expect: 100-continue). */
const SKIP_REQUEST = 'expect';

export class Http1Exchange extends Exchange implements BodySource {
  readonly protocol = 'http1' as const;
  private cur: Try | undefined;
  /** the request has a body (Content-Length > 0 or Transfer-Encoding) */
  private readonly hasBody: boolean;

  constructor(
    engine: Engine,
    conn: ConnInfo,
    state: ProxyState,
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
  ) {
    super(engine, conn, state);
    let url = req.url ?? '/';
    if (url.charCodeAt(0) !== 47 /* / */ && /^https?:\/\//i.test(url)) url = url.slice(url.indexOf('/', url.indexOf('//') + 2)) || '/'; // absolute-form
    const q = url.indexOf('?');
    this.path = q < 0 ? url : url.slice(0, q);
    this.query = q < 0 ? '' : url.slice(q + 1);
    this.method = req.method ?? 'GET';
    const h = req.headers;
    this.authority = h.host ?? '';
    const cl = h['content-length'];
    this.hasBody = h['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
    (req as WithEx)[kEx] = this;
    (res as WithEx)[kEx] = this;
    req.on('data', onRequestData);
    req.on('end', onRequestEnd);
    res.on('close', onResponseClose);
    res.on('drain', onResponseDrain);
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  }

  private requestHeaders(dest: Destination, route: HttpRoute, host: Host): string[] {
    const rewriteHost = this.upstreamAuthority !== undefined;
    const h = forwardRaw(this.req.rawHeaders, [dest.headers?.request, route.headers?.request, this.traceOps, this.clientAddressOps(host)], rewriteHost ? 'host' : SKIP_REQUEST);
    if (rewriteHost) {
      withoutExpect(h);
      h.push('host', this.upstreamAuthority!);
    }
    return h;
  }

  protected mirrorRequest(): { raw: string[]; h2: undefined } {
    return { raw: withoutExpect(forwardRaw(this.req.rawHeaders, [this.dest?.headers?.request, this.route?.headers?.request], 'host')), h2: undefined };
  }

  protected sendTry(host: Host): void {
    const pool = this.cluster!.http1Pool(host, this.conn);
    const t = new Try(this);
    this.cur = t;
    let body: Buffer | RequestBody | null = null;
    if (this.hasBody) {
      const kept = this.takeBody();
      if (this.bodyEnded) body = kept.length === 0 ? null : kept.length === 1 ? kept[0]! : Buffer.concat(kept);
      else {
        const b = new RequestBody(this);
        for (let i = 0; i < kept.length; i++) b.push(kept[i]);
        body = t.body = b;
      }
    }
    pool.pool.dispatch(
      {
        path: this.upstreamPath ?? (this.query ? `${this.path}?${this.query}` : this.path),
        method: this.method as 'GET',
        headers: this.requestHeaders(this.dest!, this.route!, host),
        body,
        reset: pool.resetEach,
      },
      t,
    );
    t.dispatched = true;
  }

  protected writeTry(chunk: Buffer): boolean {
    const b = this.cur?.body;
    if (!b || b.destroyed) return true;
    return b.push(chunk);
  }

  protected endTryBody(): void {
    const b = this.cur?.body;
    if (b && !b.destroyed) b.push(null);
  }

  protected abortTry(): void {
    const t = this.cur;
    this.cur = undefined;
    if (t) {
      t.aborted = true;
      t.abort?.(ABORTED);
    }
  }

  protected discardResponse(): void {
    const t = this.cur!;
    // a request still streaming its body would hold the connection: give it up; otherwise
    // read the response to its end so that the connection goes back to the pool
    if (t.body && !t.body.readableEnded && !this.bodyEnded) return this.abortTry();
    this.cur = undefined;
  }

  protected commitResponse(): void {
    const t = this.cur!;
    const h = forwardRaw(latin1(t.raw!), [this.dest?.headers?.response, this.route?.headers?.response]);
    t.raw = null;
    if (this.setCookie) h.push('set-cookie', this.setCookie);
    const res = this.res;
    res.sendDate = false; // the upstream's Date, if any, is forwarded
    res.writeHead(t.status, h);
  }

  onTryHeaders(t: Try, status: number, raw: Buffer[]): boolean {
    if (this.cur !== t) return true; // given up: read it to the end
    t.began = true;
    t.status = status;
    t.raw = raw;
    this.onResponseHead(status, -1);
    return true;
  }

  onTryData(t: Try, chunk: Buffer): boolean {
    if (this.cur !== t || this.phase !== 'responding') return true;
    this.respBytes += chunk.length;
    return this.res.write(chunk);
  }

  /** Wrote the whole response. */
  onTryComplete(t: Try, trailers: Buffer[] | null): void {
    if (this.cur !== t || this.phase !== 'responding') return;
    this.cur = undefined;
    endWithTrailers(this.res, trailers);
    this.onResponseDone();
  }

  onTryError(t: Try, err: Error): void {
    if (this.cur !== t) return;
    this.cur = undefined;
    if (t.began) {
      // the upstream closed mid-response
      if (this.phase !== 'responding') return;
      this.addFlag(ResponseFlag.UpstreamConnectionTermination);
      this.releaseTry(-1);
      this.resetDownstream();
      return this.finish();
    }
    if (err instanceof UpstreamError) this.onTryFailure('connect-failure', err.flag);
    else if (refusedByClient(err)) this.refused(err);
    else this.onTryFailure('reset', ResponseFlag.UpstreamConnectionTermination);
  }

  /** undici would not send the request as it is (a header it refuses): 400, not retried, no endpoint blamed. */
  private refused(err: Error): void {
    if (this.phase !== 'trying') return;
    this.releaseTry(-1);
    this.reply(400, `request not forwardable upstream: ${err.message}\n`, undefined, -1);
  }

  onDrain(): void {
    this.cur?.resume?.();
  }

  protected reply(status: number, body: string, headers: Record<string, string> | undefined, _grpc: number): void {
    this.status = status;
    const res = this.res;
    if (res.headersSent || res.destroyed) {
      this.resetDownstream();
      return this.finish();
    }
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
    this.respBytes += Buffer.byteLength(body);
    this.finish();
  }

  protected resetDownstream(): void {
    this.req.socket.destroy();
  }

  protected pauseBody(): void {
    this.req.pause();
  }

  protected resumeBody(): void {
    if (!this.req.complete) this.req.resume();
  }

  bodyWanted(): void {
    this.resumeBody();
  }
}

function onRequestData(this: http.IncomingMessage, chunk: Buffer): void {
  (this as WithEx)[kEx]!.onBody(chunk);
}
function onRequestEnd(this: http.IncomingMessage): void {
  (this as WithEx)[kEx]!.onBodyEnd();
}
function onResponseClose(this: http.ServerResponse): void {
  const ex = (this as WithEx)[kEx]!;
  if (!this.writableFinished) ex.onClose();
}
function onResponseDrain(this: http.ServerResponse): void {
  (this as WithEx)[kEx]!.onDrain();
}
