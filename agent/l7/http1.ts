// HTTP/1.1 requests through the L7 engine: the downstream side is Node's HTTP/1.1 server
// parser over the captured socket, the upstream side an http.ClientRequest on a pooled
// keep-alive connection (cluster/pools.ts). Headers stay in raw form end to end; every
// event handler is a module-level function that finds its exchange through a symbol on the
// emitter, so a request allocates no closures.
import http from 'node:http';
import type { Destination, HttpRoute } from '../../control/api/snapshot-routing.js';
import type { Host } from '../cluster/cluster.js';
import { Exchange, type Engine } from './exchange.js';
import type { ConnInfo } from '../transport/connection.js';
import { forwardRaw } from './header-ops.js';
import { ResponseFlag } from '../transport/response-flags.js';
import type { ProxyState } from '../state/proxy-state.js';
import { UpstreamError } from '../transport/connector.js';

const kEx = Symbol('nodemesh.exchange');
const kTry = Symbol('nodemesh.try');

type WithEx = { [kEx]?: Http1Exchange };
type WithTry = { [kTry]?: Try };

/** One try: the upstream request and, once it came, its response. */
class Try {
  res: http.IncomingMessage | undefined;
  constructor(
    readonly ex: Http1Exchange,
    readonly creq: http.ClientRequest,
  ) {}
}

/** Headers the proxy consumed itself and does not forward (it answered Expect: 100-continue). */
const SKIP_REQUEST = 'expect';

export class Http1Exchange extends Exchange {
  readonly protocol = 'http1' as const;
  private cur: Try | undefined;

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
    this.authority = req.headers.host ?? '';
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
    if (rewriteHost) h.push('host', this.upstreamAuthority!);
    return h;
  }

  protected mirrorRequest(): { raw: string[]; h2: undefined } {
    return { raw: forwardRaw(this.req.rawHeaders, [this.dest?.headers?.request, this.route?.headers?.request], 'host'), h2: undefined };
  }

  protected sendTry(host: Host): void {
    const pool = this.cluster!.http1Pool(host, this.conn);
    const creq = http.request({
      agent: pool.agent,
      host: host.endpoint.ip,
      port: host.endpoint.port,
      method: this.method,
      path: this.upstreamPath ?? (this.query ? `${this.path}?${this.query}` : this.path),
      headers: this.requestHeaders(this.dest!, this.route!, host) as unknown as http.OutgoingHttpHeaders,
      setHost: false,
    });
    const t = new Try(this, creq);
    (creq as WithTry)[kTry] = t;
    this.cur = t;
    creq.on('response', onTryResponse);
    creq.on('error', onTryError);
    creq.on('drain', onTryDrain);
    const body = this.takeBody();
    for (let i = 0; i < body.length; i++) creq.write(body[i]);
    if (this.bodyEnded) creq.end();
  }

  protected writeTry(chunk: Buffer): boolean {
    return this.cur ? this.cur.creq.write(chunk) : true;
  }

  protected endTryBody(): void {
    this.cur?.creq.end();
  }

  protected abortTry(): void {
    const t = this.cur;
    this.cur = undefined;
    if (t) {
      t.res?.destroy();
      t.creq.destroy();
    }
  }

  protected discardResponse(): void {
    const t = this.cur;
    this.cur = undefined;
    // read it to the end so that the keep-alive connection goes back to the pool
    t?.res?.resume();
  }

  protected commitResponse(): void {
    const up = this.cur!.res!;
    const h = forwardRaw(up.rawHeaders, [this.dest?.headers?.response, this.route?.headers?.response]);
    if (this.setCookie) h.push('set-cookie', this.setCookie);
    const res = this.res;
    res.sendDate = false; // the upstream's Date, if any, is forwarded
    res.writeHead(up.statusCode ?? 502, h);
    up.on('data', onUpstreamData);
    up.on('end', onUpstreamEnd);
    up.on('close', onUpstreamClose);
  }

  /** Wrote the whole response. */
  onUpstreamEnd(): void {
    if (this.phase !== 'responding') return;
    this.res.end();
    this.onResponseDone();
  }

  onUpstreamData(chunk: Buffer): void {
    this.respBytes += chunk.length;
    if (!this.res.write(chunk)) this.cur?.res?.pause();
  }

  /** The upstream closed mid-response (before 'end'). */
  onUpstreamCut(): void {
    if (this.phase !== 'responding') return;
    this.addFlag(ResponseFlag.UpstreamConnectionTermination);
    this.releaseTry(-1);
    this.resetDownstream();
    this.finish();
  }

  onDrain(): void {
    this.cur?.res?.resume();
  }

  onTryResponse(t: Try, res: http.IncomingMessage): void {
    if (this.cur !== t) {
      res.resume();
      return;
    }
    t.res = res;
    (res as WithTry)[kTry] = t;
    this.onResponseHead(res.statusCode ?? 502, -1);
  }

  onTryError(t: Try, err: Error): void {
    if (this.cur !== t || t.res) return; // after a response began, its 'close' tells
    this.cur = undefined;
    if (err instanceof UpstreamError) this.onTryFailure('connect-failure', err.flag);
    else this.onTryFailure('reset', ResponseFlag.UpstreamConnectionTermination);
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

  resumeFromTry(): void {
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
function onTryResponse(this: http.ClientRequest, res: http.IncomingMessage): void {
  const t = (this as WithTry)[kTry]!;
  t.ex.onTryResponse(t, res);
}
function onTryError(this: http.ClientRequest, err: Error): void {
  const t = (this as WithTry)[kTry]!;
  t.ex.onTryError(t, err);
}
function onTryDrain(this: http.ClientRequest): void {
  const t = (this as WithTry)[kTry]!;
  t.ex.resumeFromTry();
}
function onUpstreamData(this: http.IncomingMessage, chunk: Buffer): void {
  (this as WithTry)[kTry]!.ex.onUpstreamData(chunk);
}
function onUpstreamEnd(this: http.IncomingMessage): void {
  (this as WithTry)[kTry]!.ex.onUpstreamEnd();
}
function onUpstreamClose(this: http.IncomingMessage): void {
  if (!this.complete) (this as WithTry)[kTry]!.ex.onUpstreamCut();
}
