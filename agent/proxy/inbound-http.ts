// HTTP/1.1 at the destination's node proxy, for workloads whose AuthorizationPolicies test
// HTTP attributes, and on ports declared HTTP (request telemetry); every other inbound
// stream stays a byte pipe. Node's own HTTP parser (llhttp) reads the requests from the
// inbound stream, so framing is strict (a request the pod would read differently from the
// proxy is refused with 400, not forwarded); each request is authorised on its own
// (keep-alive and pipelining: every request of the connection is evaluated, responses go
// back in order). A denied request gets Envoy's answer, 403 "RBAC: access denied"; an
// allowed one is forwarded to the pod with its path normalised as it was evaluated, over one
// pod connection per inbound connection (reopened if the pod closes it) driven by an undici
// Client through its dispatch API, one handler object per request (PodRequest), as the L7
// engine's upstream pools are (transport/undici-http1.ts; ARCHITECTURE.md, "Inbound HTTP/1.1
// to the pod through undici"). The one request undici cannot send, asterisk-form
// (`OPTIONS *`), goes through Node's client on a pod connection of its own.
//
// HTTP/2 cleartext (h2c with prior knowledge, as gRPC speaks it) is served the same way by
// serveH2cInbound: Node's HTTP/2 server reads the streams of the inbound connection, each
// one is authorised on its own (`:method`, normalised `:path`, `:authority`, headers), and
// allowed streams go to the pod over one h2c client session per inbound connection
// (reopened if the pod closes it), headers, bodies and trailers streamed both ways. A
// denied stream gets Envoy's local reply: 403 "RBAC: access denied", or for a gRPC request
// (content-type application/grpc, +proto, ;...) a trailers-only `:status 200` with
// grpc-status 7 (PERMISSION_DENIED) and grpc-message "RBAC: access denied", as Envoy's
// sendLocalReply answers gRPC requests. Extended CONNECT (no `:path`) is answered 400.
//
// A stream that starts with neither an HTTP/1.x request line nor the HTTP/2 preface is
// evaluated as TCP (see inbound-delivery.ts), which is fail-safe: DENY rules with HTTP
// fields match it and ALLOW rules with HTTP fields do not.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { Client } from 'undici';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { withoutEmptyWrites } from '../transport/http2-write-fix.js';
import { endsWithTransport, reusable } from '../transport/keep-alive.js';
import { closeIdleSession, DEFAULT_TIMEOUTS, enforceServerTimeouts, type ProxyTimeouts } from '../transport/timeouts.js';
import { authorizeRequest, type AuthorizationResult, type L4Attributes, type WorkloadPolicy } from '../policy/authorization.js';
import { normalizePath } from '../policy/authorization-match.js';
import { applyOps, forwardH2, forwardRaw } from '../l7/header-ops.js';
import { InboundRequest, type InboundTelemetry } from '../telemetry/inbound-requests.js';
import { requestDone } from '../telemetry/request-record.js';
import { ResponseFlag, withResponseFlag } from '../transport/response-flags.js';
import { endWithTrailers, latin1, refusedByClient, RequestBody, undiciHttp1Options, withoutExpect, type BodySource } from '../transport/undici-http1.js';
import type { HeaderOps } from '../../control/api/snapshot-routing.js';

const log = logger('agent/inbound-http');

/** Envoy's RBAC filter answers a denied request with this body. */
export const RBAC_DENIED_BODY = 'RBAC: access denied';

/** Envoy's local reply when the pod could not be reached or reset the request before its response head. */
const UPSTREAM_RESET_BODY = 'upstream connect error or disconnect/reset before headers';

export interface HttpInboundOptions {
  policy: WorkloadPolicy;
  l4: L4Attributes;
  /** a new connection to the pod (the first request reuses `first`) */
  connect: () => Promise<Duplex>;
  first: Duplex;
  /** called with every request decision (metrics) */
  onDecision: (r: AuthorizationResult) => void;
  /** the phases' timeouts: a request head, an idle connection (to the peer and to the pod) */
  timeouts?: ProxyTimeouts;
  /** reporter="destination" request telemetry of this connection (telemetry/inbound-requests.ts) */
  telemetry?: InboundTelemetry;
  /** `http://ip:port` of the pod: the origin of its client (and the Host of a request that has none) */
  authority: string;
}

/** What an inbound connection's requests are served with, found from its socket. */
interface InboundContext {
  o: HttpInboundOptions;
  pod: PodClient;
}
const kContext = Symbol('nodemesh.inbound');
type WithContext = { [kContext]?: InboundContext };
const contextOf = (req: http.IncomingMessage): InboundContext => (req.socket as WithContext)[kContext]!;

/**
 * One HTTP/1.1 server per set of timeouts (the agent has one) for every inbound connection:
 * its head timeout is Node's sweep, one interval per server, not a timer per connection.
 */
const servers = new WeakMap<ProxyTimeouts, http.Server>();

function inboundServer(t: ProxyTimeouts): http.Server {
  let server = servers.get(t);
  if (server) return server;
  server = http.createServer({ maxHeaderSize: 64 * 1024 });
  // a request head within the head timeout; the peer's idle connection is kept for Envoy's
  // 1 h idle timeout (transport/timeouts.ts)
  enforceServerTimeouts(server, t);
  // a peer that half-closes after its request still gets the response, then the stream ends
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.on('request', (req, res) => {
    handle(req, res, contextOf(req), false);
  });
  // "Expect: 100-continue": decide before the client sends its body; a denied request gets
  // its 403 without a 100 Continue
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    handle(req, res, contextOf(req), true);
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => tunnel(req, socket, head, contextOf(req).o));
  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => tunnel(req, socket, head, contextOf(req).o));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (socket.writable && err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
      socket.end('HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else if (socket.writable && err.code !== 'ECONNRESET')
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  servers.set(t, server);
  return server;
}

/**
 * Serves `stream` (whose first bytes look like an HTTP/1.x request line) until either side
 * closes it. Resolves when the inbound stream is done. The peer's FIN ends the stream once
 * the responses to its requests are written.
 */
export function serveHttpInbound(stream: Duplex, o: HttpInboundOptions): Promise<void> {
  const t = o.timeouts ?? DEFAULT_TIMEOUTS;
  const pod = new PodClient(o.first, o.connect, o.authority, t.httpIdleMs);
  (stream as WithContext)[kContext] = { o, pod };
  return new Promise((resolve) => {
    stream.once('close', () => {
      pod.destroy();
      resolve();
    });
    // an HBONE stream is no socket: no empty chunk in its corked writes (http2-write-fix.ts)
    inboundServer(t).emit('connection', withoutEmptyWrites(stream));
    stream.resume(); // deliverInbound paused it to read the request line
  });
}

function handle(req: http.IncomingMessage, res: http.ServerResponse, c: InboundContext, expectsContinue: boolean): void {
  res.sendDate = false;
  const o = c.o;
  const rec = o.telemetry ? new InboundRequest(o.telemetry, req.method ?? '', req.url ?? '/', req.headers.host ?? '', 'HTTP/1.1', o.l4.sourceIp, req.headers) : undefined;
  const ex = new PodRequest(req, res, rec);
  (req as WithRequest)[kRequest] = ex;
  (res as WithRequest)[kRequest] = ex;
  res.on('close', onResponseClose);
  // a denied request's body bytes are counted too (Node reads them past its answer)
  if (rec) req.on('data', onRequestData);
  const normalized = normalizePath(req.url ?? '/');
  if (!normalized) {
    // "%00: The request will always be rejected with HTTP code 400"
    return void reply(res, 400, 'Bad Request');
  }
  const decision = authorizeRequest(o.policy, o.l4, {
    method: req.method ?? '',
    path: req.url ?? '/',
    host: req.headers.host ?? '',
    headers: req.headersDistinct,
  });
  o.onDecision(decision);
  if (decision.decision === 'deny') return void reply(res, 403, RBAC_DENIED_BODY);
  // the 100 Continue is ours; the pod gets the body without being asked (an Expect is never
  // forwarded: undici sends none, and only an HTTP/1.0 request could still carry one here)
  if (expectsContinue) res.writeContinue();
  const headers = withoutExpect(forwardRaw(req.rawHeaders, rec?.traceOps ? [rec.traceOps] : NO_OPS, 'trailer'));
  const h = req.headers;
  const cl = h['content-length'];
  if (h['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')) {
    ex.body = new RequestBody(ex);
    if (!rec) req.on('data', onRequestData);
    req.on('end', onRequestEnd);
  }
  res.on('drain', onResponseDrain);
  if (normalized.target === '*') return forwardAsteriskForm(ex, o, headers);
  // reset false: a HEAD or a GET with a body keeps the connection, as Node's agent did
  c.pod.client.dispatch({ path: normalized.target, method: req.method as 'GET', headers, body: ex.body, reset: false }, ex);
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
class PodRequest implements BodySource {
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
function forwardAsteriskForm(ex: PodRequest, o: HttpInboundOptions, headers: string[]): void {
  const up = http.request({
    method: ex.req.method,
    path: '*',
    headers: [...headers, 'connection', 'close'],
    setHost: false,
    createConnection: (_opts: unknown, cb: (err: Error | null, socket?: Duplex) => void) => {
      o.connect().then(
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

/** Upgrade (WebSocket) and CONNECT: authorised like any request, then a byte pipe to a new pod connection. */
function tunnel(req: http.IncomingMessage, socket: Duplex, head: Buffer, o: HttpInboundOptions): void {
  const normalized = normalizePath(req.url ?? '/');
  const decision = normalized
    ? authorizeRequest(o.policy, o.l4, {
        method: req.method ?? '',
        path: req.url ?? '/',
        host: req.headers.host ?? '',
        headers: req.headersDistinct,
      })
    : undefined;
  if (decision) o.onDecision(decision);
  if (!decision || decision.decision === 'deny') {
    const [status, body] = decision ? ['403 Forbidden', RBAC_DENIED_BODY] : ['400 Bad Request', 'Bad Request'];
    socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    return;
  }
  o.connect().then(
    (pod) => {
      const lines = [`${req.method} ${normalized!.target} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      pod.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) pod.write(head);
      pod.on('error', () => socket.destroy());
      socket.on('error', () => pod.destroy());
      socket.pipe(pod);
      pod.pipe(socket);
      // a tunnel now: the TCP idle timeout (the peer's side sees both directions)
      (socket as net.Socket).setTimeout((o.timeouts ?? DEFAULT_TIMEOUTS).tcpIdleMs, () => {
        socket.destroy();
        pod.destroy();
      });
    },
    () => socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'),
  );
}

function reply(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
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
class PodClient {
  readonly client: Client;

  constructor(
    private first: Duplex | undefined,
    private readonly open: () => Promise<Duplex>,
    origin: string,
    idleTimeoutMs: number,
  ) {
    this.client = new Client(origin, undiciHttp1Options(idleTimeoutMs, 0, (_o, cb) => this.connect(cb)));
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

// --- h2c ----------------------------------------------------------------------------------

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM } = http2.constants;

export type H2cInboundOptions = HttpInboundOptions;

/**
 * Serves `stream` (whose first bytes are the HTTP/2 connection preface) until either side
 * closes it. Resolves when the inbound stream is done.
 */
export function serveH2cInbound(stream: Duplex, o: H2cInboundOptions): Promise<void> {
  const pod = new PodSession(o.first, o.connect, o.authority);
  const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
  stream.allowHalfOpen = false; // HTTP/2 never half-closes: the peer's FIN ends the session
  server.on('session', (session: http2.ServerHttp2Session) => {
    session.on('error', () => stream.destroy());
    closeIdleSession(session, o.timeouts ?? DEFAULT_TIMEOUTS);
  });
  server.on('stream', (s: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => handleH2(s, headers, o, pod));
  return new Promise((resolve) => {
    stream.once('close', () => {
      pod.destroy();
      resolve();
    });
    // left paused: the session reads what deliverInbound gave back (unshift) on the next
    // tick; resuming here would hand those bytes to 'data' listeners first, and the session
    // would see a preface without its start
    server.emit('connection', withoutEmptyWrites(stream));
  });
}

/** Envoy's Grpc::Common::hasGrpcContentType: application/grpc, application/grpc+..., application/grpc;... */
function isGrpc(headers: http2.IncomingHttpHeaders): boolean {
  const ct = headers['content-type'];
  return typeof ct === 'string' && /^application\/grpc($|[+;])/i.test(ct);
}

/** Envoy's Grpc::Utility::httpToGrpcStatus for the statuses answered here. */
function grpcStatusOf(status: number): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 403:
      return 7; // PERMISSION_DENIED
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}

/**
 * Envoy's local reply: text/plain with a body, or for a gRPC request a trailers-only
 * response (`:status 200`, grpc-status from the HTTP status, grpc-message the body).
 */
function localReply(s: http2.ServerHttp2Stream, grpc: boolean, status: number, body: string): void {
  if (s.destroyed || s.headersSent) return void s.close(NGHTTP2_INTERNAL_ERROR);
  if (grpc) {
    s.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusOf(status)),
        'grpc-message': percentEncode(body),
      },
      { endStream: true },
    );
  } else {
    s.respond({ ':status': status, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    s.end(body);
  }
  // the request body, if any, is not wanted (Envoy resets the rest of the stream likewise)
  s.resume();
}

/** Envoy's PercentEncoding::encode for grpc-message: `%` and bytes outside printable ASCII. */
function percentEncode(v: string): string {
  return /[^\x20-\x24\x26-\x7e]/.test(v)
    ? Array.from(Buffer.from(v, 'utf8'), (b) =>
        b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b),
      ).join('')
    : v;
}

function handleH2(s: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, o: H2cInboundOptions, pod: PodSession): void {
  s.on('error', () => {});
  const grpc = isGrpc(headers);
  const rec = o.telemetry ? trackH2(o.telemetry, s, headers, grpc, o.l4.sourceIp) : undefined;
  const target = headers[':path'];
  const normalized = target === undefined ? undefined : normalizePath(target);
  if (!normalized) return localReply(s, grpc, 400, 'Bad Request');
  const host = headers[':authority'] ?? headers.host ?? '';
  const decision = authorizeRequest(o.policy, o.l4, {
    method: headers[':method'] ?? '',
    path: target!,
    host,
    headers: headers.host === undefined && host ? { ...headers, host } : headers,
  });
  o.onDecision(decision);
  if (decision.decision === 'deny') return localReply(s, grpc, 403, RBAC_DENIED_BODY);

  const out = forwardH2(headers as Record<string, string | string[] | undefined>, true);
  out[':path'] = normalized.target;
  if (rec?.traceOps) applyOps(out, rec.traceOps);
  const endStream = s.endAfterHeaders;
  pod.session().then(
    (session) => {
      if (s.destroyed) return;
      let up: http2.ClientHttp2Stream;
      try {
        up = session.request(out, { endStream, waitForTrailers: !endStream });
      } catch {
        return localReply(s, grpc, 503, 'upstream connect error or disconnect/reset before headers');
      }
      forward(s, up, grpc, rec);
    },
    () => localReply(s, grpc, 503, 'upstream connect error or disconnect/reset before headers'),
  );
}

/** One allowed stream: request body and trailers up, response head, body and trailers down. */
function forward(s: http2.ServerHttp2Stream, up: http2.ClientHttp2Stream, grpc: boolean, rec: InboundRequest | undefined): void {
  let requestTrailers: http2.IncomingHttpHeaders | undefined;
  let responseTrailers: http2.OutgoingHttpHeaders | undefined;
  let answered = false;
  up.on('error', () => {});
  s.on('trailers', (t: http2.IncomingHttpHeaders) => (requestTrailers = t));
  up.on('wantTrailers', () =>
    up.sendTrailers(requestTrailers ? forwardH2(requestTrailers as Record<string, string | string[] | undefined>, false) : {}),
  );
  // request bytes are counted only from here: a 'data' listener set while the pod's session
  // was still being dialled would put the stream in flowing mode and lose the body before
  // the pipe (a gRPC unary call then reached the pod without its message: UNIMPLEMENTED)
  if (rec) s.on('data', (chunk: Buffer) => (rec.reqBytes += chunk.length));
  s.pipe(up);
  up.on('response', (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number) => {
    answered = true;
    if (rec) {
      rec.responded(Number(h[':status'] ?? 502));
      up.on('data', (chunk: Buffer) => (rec.respBytes += chunk.length));
    }
    if (s.destroyed || s.closed) return void up.close(NGHTTP2_CANCEL);
    const head = { ...forwardH2(h as Record<string, string | string[] | undefined>, false), ':status': h[':status'] ?? 502 };
    if (flags & NGHTTP2_FLAG_END_STREAM) {
      // trailers-only (a gRPC status without messages): one HEADERS frame with END_STREAM
      s.respond(head, { endStream: true });
      return;
    }
    s.respond(head, { waitForTrailers: true });
    up.pipe(s);
  });
  up.on(
    'trailers',
    (t: http2.IncomingHttpHeaders) => (responseTrailers = forwardH2(t as Record<string, string | string[] | undefined>, false)),
  );
  s.on('wantTrailers', () => s.sendTrailers(responseTrailers ?? {}));
  up.on('close', () => {
    // closed before its response (reset, the pod's session gone): Envoy's 503 local reply
    if (!answered && rec) rec.flags = withResponseFlag(rec.flags, ResponseFlag.UpstreamConnectionFailure);
    if (!answered) return localReply(s, grpc, 503, 'upstream connect error or disconnect/reset before headers');
    if (up.rstCode !== undefined && up.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !s.destroyed)
      s.close(up.rstCode === NGHTTP2_REFUSED_STREAM ? NGHTTP2_INTERNAL_ERROR : up.rstCode);
  });
  s.on('close', () => {
    if (!up.destroyed && !up.closed) up.close(NGHTTP2_CANCEL);
  });
}

/** Request telemetry of one HTTP/2 stream at the destination: one record when the stream closes. */
function trackH2(t: InboundTelemetry, s: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, grpc: boolean, remote: string): InboundRequest {
  const rec = new InboundRequest(
    t,
    headers[':method'] ?? '',
    headers[':path'] ?? '',
    headers[':authority'] ?? headers.host ?? '',
    'HTTP/2',
    remote,
    headers,
  );
  s.once('close', () => {
    const sent = s.headersSent ? s.sentHeaders : undefined;
    rec.status = Number(sent?.[':status'] ?? 0);
    if (grpc) rec.grpcStatus = String(s.sentTrailers?.['grpc-status'] ?? sent?.['grpc-status'] ?? '-');
    if (!sent || (s.rstCode !== undefined && s.rstCode !== http2.constants.NGHTTP2_NO_ERROR && rec.flags === '-'))
      rec.flags = withResponseFlag(rec.flags, ResponseFlag.DownstreamConnectionTermination);
    rec.end();
    requestDone(t.labels(grpc), rec);
  });
  return rec;
}

/**
 * One h2c client session to the pod for one inbound connection. The first is made over the
 * connection deliverInbound already opened; after the pod closes it (GOAWAY, error) the
 * next one comes from the connector.
 */
class PodSession {
  private current: Promise<http2.ClientHttp2Session> | undefined;
  private live: http2.ClientHttp2Session | undefined;
  private closed = false;

  constructor(
    private first: Duplex | undefined,
    private readonly open: () => Promise<Duplex>,
    private readonly authority: string,
  ) {}

  session(): Promise<http2.ClientHttp2Session> {
    if (this.closed) return Promise.reject(new Error('inbound connection closed'));
    this.current ??= this.connect();
    return this.current;
  }

  private async connect(): Promise<http2.ClientHttp2Session> {
    const first = this.first;
    this.first = undefined;
    let d: Duplex;
    try {
      d = first && !first.destroyed ? first : await this.open();
    } catch (err) {
      this.current = undefined;
      throw err;
    }
    if (this.closed) {
      d.destroy();
      throw new Error('inbound connection closed');
    }
    const transport = withoutEmptyWrites(d);
    const s = http2.connect(this.authority, { createConnection: () => transport as net.Socket });
    endsWithTransport(s, d);
    this.live = s;
    const drop = () => {
      if (this.live !== s) return;
      this.live = undefined;
      this.current = undefined;
    };
    s.on('error', drop);
    s.on('goaway', drop);
    s.on('close', drop);
    this.sessions.add(s);
    s.once('close', () => this.sessions.delete(s));
    return s;
  }

  private readonly sessions = new Set<http2.ClientHttp2Session>();

  destroy(): void {
    this.closed = true;
    this.first?.destroy();
    this.first = undefined;
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }
}
