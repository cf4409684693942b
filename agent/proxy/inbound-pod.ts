// HTTP/1.1 from the destination's node proxy to a local pod, for the requests inbound-http.ts
// read and allowed: one pod connection per inbound connection (PodClient, reopened if the pod
// closes it) driven by an undici Client through its dispatch API, one handler object per
// request (PodRequest) and module-level listeners, as the L7 engine's upstream tries are
// (transport/undici-http1.ts; ARCHITECTURE.md, "Inbound HTTP/1.1 to the pod through
// undici"): no ClientRequest, IncomingMessage or closure per request. The one request undici
// cannot send, asterisk-form (`OPTIONS *`), goes through Node's client on a pod connection
// of its own.
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { Client } from '../transport/undici-dispatchers.js';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import type { HeaderOps } from '../../control/api/snapshot-routing.js';
import { forwardRaw } from '../l7/header-ops.js';
import type { InboundRequest } from '../telemetry/inbound-requests.js';
import { requestDone } from '../telemetry/request-record.js';
import { withoutEmptyWrites } from '../transport/http2-write-fix.js';
import { reusable } from '../transport/keep-alive.js';
import { ResponseFlag, withResponseFlag } from '../transport/response-flags.js';
import {
  endWithTrailers,
  latin1,
  refusedByClient,
  RequestBody,
  undiciHttp1Options,
  withoutExpect,
  type BodySource,
} from '../transport/undici-http1.js';

const log = logger('agent/inbound-pod');

/** Envoy's local reply when the pod could not be reached or reset the request before its response head. */
const UPSTREAM_RESET_BODY = 'upstream connect error or disconnect/reset before headers';

/**
 * A request of an inbound connection, from its head on: its record (when the port is
 * counted) is ended when its response closes, whatever answers it.
 */
export function beginRequest(req: http.IncomingMessage, res: http.ServerResponse, rec: InboundRequest | undefined): PodRequest {
  const ex = new PodRequest(req, res, rec);
  (req as WithRequest)[kRequest] = ex;
  (res as WithRequest)[kRequest] = ex;
  res.on('close', onResponseClose);
  // a denied request's body bytes are counted too (Node reads them past its answer)
  if (rec) req.on('data', onRequestData);
  return ex;
}

/**
 * Sends the allowed request to the pod at `target` (its normalised path), hop-by-hop fields
 * and those Connection names dropped, trace headers set, without Expect (the proxy answered
 * it; only an HTTP/1.0 request can still carry one here, and undici sends none).
 */
export function forwardToPod(ex: PodRequest, pod: PodClient, target: string, connect: () => Promise<Duplex>): void {
  const { req, rec } = ex;
  const headers = withoutExpect(forwardRaw(req.rawHeaders, rec?.traceOps ? [rec.traceOps] : NO_OPS, 'trailer'));
  const h = req.headers;
  const cl = h['content-length'];
  if (h['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')) {
    ex.body = new RequestBody(ex);
    if (!rec) req.on('data', onRequestData);
    req.on('end', onRequestEnd);
  }
  ex.res.on('drain', onResponseDrain);
  if (target === '*') return forwardAsteriskForm(ex, connect, headers);
  // reset false: a HEAD or a GET with a body keeps the connection, as Node's agent did
  pod.client.dispatch({ path: target, method: req.method as 'GET', headers, body: ex.body, reset: false }, ex);
}

const NO_OPS: readonly (HeaderOps | undefined)[] = [];

const kRequest = Symbol('nodemesh.inbound-request');
type WithRequest = { [kRequest]?: PodRequest };

/** What the proxy gives up a pod request with (undici passes it back to onError, which ignores it). */
const ABORTED = new Error('request abandoned by the proxy: its client went away');

/** The pod could not be reached for a request (a connection after the pod closed the last one). */
class PodUnreachable extends NodemeshError {
  constructor(
    /** the connector's Envoy flag (UF when it gave none) */
    readonly flag: string,
    cause: unknown,
  ) {
    super('NM_ERR_UPSTREAM', `pod connection failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/**
 * One allowed request on its way to the pod and back: undici's dispatch handler (its legacy
 * form, raw header Buffers) and the request's state, found by the module-level listeners of
 * its IncomingMessage and ServerResponse through a symbol. The request body is a RequestBody
 * fed from the request's 'data' (paused while undici's connection is full); the response
 * body is written as it comes (undici's parser paused while the client's buffer is full,
 * resumed on 'drain'); response trailers are forwarded when the response to the client is
 * chunked. Errors as Envoy answers them: before the response head a 503 local reply, flagged
 * UF when the pod could not be reached and UC when it closed or reset the connection; after
 * it, the client's connection is reset (UC). A client that goes away aborts the request (DC).
 */
export class PodRequest implements BodySource {
  abort: ((err?: Error) => void) | null = null;
  /** undici's resume, for a response paused by back-pressure */
  resume: (() => void) | null = null;
  body: RequestBody | null = null;
  /** the response head was written */
  began = false;
  /** settled: answered whole, failed, or given up; later calls of undici change nothing */
  done = false;
  /** the pod's side ended the exchange early (a reset mid-response): UC, not the client's DC */
  upstreamFailed = false;

  constructor(
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    readonly rec: InboundRequest | undefined,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.done) abort(ABORTED);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx (102, 103 Early Hints): not forwarded, as Node's client ignored them (the 100
    // Continue the client asked for was the proxy's own)
    if (status < 200 || this.done) return true;
    this.resume = resume;
    this.head(status, statusText, latin1(raw));
    return true;
  }

  head(status: number, statusText: string, raw: readonly string[]): void {
    this.res.writeHead(status, statusText, forwardRaw(raw, NO_OPS, 'trailer'));
    this.began = true;
    this.rec?.responded(status);
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return true;
    if (this.rec) this.rec.respBytes += chunk.length;
    return this.res.write(chunk);
  }

  // typed string[] by undici, Buffers in fact (its parser's raw trailer fields)
  onComplete(trailers: string[] | null): void {
    if (this.done) return;
    this.settle();
    endWithTrailers(this.res, trailers as unknown as Buffer[] | null);
  }

  onError(err: Error): void {
    if (this.done) return;
    this.settle();
    const res = this.res;
    if (this.began) {
      // the pod closed or reset the connection mid-response
      this.upstreamFailed = true;
      this.flag(ResponseFlag.UpstreamConnectionTermination);
      return void res.destroy();
    }
    if (refusedByClient(err)) {
      // a request undici will not send (two Host fields: RFC 9112 §3.2 answers 400 too)
      log.debug({ err }, 'request not forwardable to the pod');
      return void reply(res, 400, 'Bad Request');
    }
    log.debug({ err }, 'pod request failed');
    this.flag(err instanceof PodUnreachable ? err.flag : ResponseFlag.UpstreamConnectionTermination);
    if (res.headersSent) res.destroy();
    else reply(res, 503, UPSTREAM_RESET_BODY);
  }

  onUpgrade(): void {
    // never asked for: upgrades and CONNECT are tunnelled (tunnel())
  }

  bodyWanted(): void {
    if (!this.req.complete) this.req.resume();
  }

  private flag(flag: string): void {
    if (this.rec) this.rec.flags = withResponseFlag(this.rec.flags, flag);
  }

  /** No more of the pod's request: a body still arriving is read and dropped (Node reads the next request after it). */
  settle(): void {
    this.done = true;
    if (this.body && !this.body.destroyed) this.body.destroy();
    if (!this.req.complete) this.req.resume();
  }
}

function onRequestData(this: http.IncomingMessage, chunk: Buffer): void {
  const ex = (this as WithRequest)[kRequest]!;
  if (ex.rec) ex.rec.reqBytes += chunk.length;
  const b = ex.body;
  if (b && !b.destroyed && !ex.done && !b.push(chunk)) this.pause();
}

function onRequestEnd(this: http.IncomingMessage): void {
  const b = (this as WithRequest)[kRequest]!.body;
  if (b && !b.destroyed) b.push(null);
}

function onResponseDrain(this: http.ServerResponse): void {
  (this as WithRequest)[kRequest]!.resume?.();
}

/** The response is done or its client went away: the request's record, and the pod request given up if still going. */
function onResponseClose(this: http.ServerResponse): void {
  const ex = (this as WithRequest)[kRequest]!;
  if (!ex.done) {
    ex.settle();
    ex.abort?.(ABORTED);
  }
  const rec = ex.rec;
  if (!rec) return;
  if (!this.writableFinished && !ex.upstreamFailed) rec.flags = withResponseFlag(rec.flags, ResponseFlag.DownstreamConnectionTermination);
  rec.status = this.headersSent ? this.statusCode : 0;
  rec.end();
  requestDone(rec.telemetry.labels(false), rec);
}

/**
 * Asterisk-form (`OPTIONS * HTTP/1.1`, RFC 9112 §3.2.4): undici sends only paths that start
 * with a slash, so Node's client carries it, on a pod connection of its own that closes after
 * it (rare enough not to be pooled); the same handler answers.
 */
function forwardAsteriskForm(ex: PodRequest, connect: () => Promise<Duplex>, headers: string[]): void {
  const up = http.request({
    method: ex.req.method,
    path: '*',
    headers: [...headers, 'connection', 'close'],
    setHost: false,
    createConnection: (_opts: unknown, cb: (err: Error | null, socket?: Duplex) => void) => {
      connect().then(
        (d) => cb(null, d),
        (err: unknown) => cb(new PodUnreachable(flagOf(err), err)),
      );
      return undefined;
    },
  } as http.RequestOptions);
  ex.abort = () => up.destroy();
  up.on('response', (r: http.IncomingMessage) => {
    if (ex.done) return void up.destroy();
    ex.resume = () => r.resume();
    ex.head(r.statusCode ?? 502, r.statusMessage ?? '', r.rawHeaders);
    r.on('data', (chunk: Buffer) => {
      if (!ex.onData(chunk)) r.pause();
    });
    r.on('end', () => ex.onComplete(null));
    r.on('error', (err) => ex.onError(err));
  });
  up.on('error', (err) => ex.onError(err));
  if (ex.body) ex.body.pipe(up);
  else up.end();
}

/** The Envoy flag an UpstreamError carries (UF for any other failure to connect). */
function flagOf(err: unknown): string {
  const carried = (err as { flag?: unknown } | undefined)?.flag;
  return typeof carried === 'string' ? carried : ResponseFlag.UpstreamConnectionFailure;
}

/**
 * The pod connection of one inbound connection: an undici Client (one connection, one
 * request at a time, kept alive between requests for the idle timeout, or what the pod's
 * `Keep-Alive: timeout=` allows), as the http.Agent with maxSockets 1 before it. One per
 * inbound connection, not per pod: each carries one peer's requests from that peer's own
 * address (transparent delivery, issue 10), and goes when the inbound connection goes. The
 * first connection is the one deliverInbound already made; after the pod closed it (undici
 * drops a connection that sees 'end'), the next comes from the connector.
 */
export class PodClient {
  readonly client: Client;

  constructor(
    private first: Duplex | undefined,
    private readonly open: () => Promise<Duplex>,
    origin: string,
    idleTimeoutMs: number,
  ) {
    this.client = new Client(
      origin,
      undiciHttp1Options(idleTimeoutMs, 0, (_o, cb) => this.connect(cb)),
    );
  }

  private connect(cb: (err: Error | null, socket: Duplex | null) => void): void {
    const first = this.first;
    this.first = undefined;
    // on the next tick: undici 7 does not write the request whose connect callback it gets
    // synchronously (its resume loop is re-entered and returns)
    if (first && reusable(first)) return void process.nextTick(cb, null, withoutEmptyWrites(first));
    first?.destroy();
    this.open().then(
      (d) => cb(null, withoutEmptyWrites(d)),
      (err: unknown) => cb(new PodUnreachable(flagOf(err), err), null),
    );
  }

  destroy(): void {
    this.first?.destroy();
    this.first = undefined;
    this.client.destroy(noop);
  }
}

function noop(): void {}

/** Envoy-style local reply: text/plain with its length. */
export function reply(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
