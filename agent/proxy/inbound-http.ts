// HTTP/1.1 at the destination's node proxy, for workloads whose AuthorizationPolicies test
// HTTP attributes, and on ports declared HTTP (request telemetry); every other inbound
// stream stays a byte pipe. Node's own HTTP parser (llhttp) reads the requests from the
// inbound stream, so framing is strict (a request the pod would read differently from the
// proxy is refused with 400, not forwarded); each request is authorised on its own
// (keep-alive and pipelining: every request of the connection is evaluated, responses go
// back in order). A denied request gets Envoy's answer, 403 "RBAC: access denied"; an
// allowed one is forwarded to the pod with its path normalised as it was evaluated, over one
// pod connection per inbound connection (reopened if the pod closes it), through undici
// (inbound-pod.ts).
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
import { withoutEmptyWrites } from '../transport/http2-write-fix.js';
import { endsWithTransport } from '../transport/keep-alive.js';
import { relay } from '../transport/relay.js';
import { closeIdleSession, DEFAULT_TIMEOUTS, enforceServerTimeouts, type ProxyTimeouts } from '../transport/timeouts.js';
import { ALLOWED_WITHOUT_POLICY, authorizeRequest, hasRules, type AuthorizationResult, type L4Attributes, type WorkloadPolicy } from '../policy/authorization.js';
import { normalizePath } from '../policy/authorization-match.js';
import { applyOps, forwardH2 } from '../l7/header-ops.js';
import { InboundRequest, type InboundTelemetry } from '../telemetry/inbound-requests.js';
import { requestDone } from '../telemetry/request-record.js';
import { ResponseFlag, withResponseFlag } from '../transport/response-flags.js';
import { beginRequest, forwardToPod, PodClient, reply } from './inbound-pod.js';
import '../transport/async-bind-fix.js'; // HTTP/2 streams without DEP0172's per-stream cost

/** Envoy's RBAC filter answers a denied request with this body. */
export const RBAC_DENIED_BODY = 'RBAC: access denied';
import { h2RequestOptions } from '../transport/http2-request-options.js';

export interface HttpInboundOptions {
  /** the destination's policy in force now (each request is authorized against it) */
  policy: () => WorkloadPolicy;
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
  const ex = beginRequest(req, res, rec);
  const normalized = normalizePath(req.url ?? '/');
  if (!normalized) {
    // "%00: The request will always be rejected with HTTP code 400"
    return void reply(res, 400, 'Bad Request');
  }
  // a workload without policies (a port declared HTTP, parsed for its telemetry) builds no
  // attributes: headersDistinct is an object of arrays made per read
  const policy = o.policy();
  const decision = hasRules(policy)
    ? authorizeRequest(policy, o.l4, {
        method: req.method ?? '',
        path: req.url ?? '/',
        host: req.headers.host ?? '',
        headers: req.headersDistinct,
      })
    : ALLOWED_WITHOUT_POLICY;
  o.onDecision(decision);
  if (decision.decision === 'deny') return void reply(res, 403, RBAC_DENIED_BODY);
  // the 100 Continue is ours; the pod gets the body without being asked
  if (expectsContinue) res.writeContinue();
  forwardToPod(ex, c.pod, normalized.target, o.connect);
}

/** Upgrade (WebSocket) and CONNECT: authorised like any request, then a byte pipe to a new pod connection. */
function tunnel(req: http.IncomingMessage, socket: Duplex, head: Buffer, o: HttpInboundOptions): void {
  const normalized = normalizePath(req.url ?? '/');
  const decision = normalized
    ? authorizeRequest(o.policy(), o.l4, {
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
      relay(socket, pod);
      // a tunnel now: the TCP idle timeout (the peer's side sees both directions)
      (socket as net.Socket).setTimeout((o.timeouts ?? DEFAULT_TIMEOUTS).tcpIdleMs, () => {
        socket.destroy();
        pod.destroy();
      });
    },
    () => socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'),
  );
}

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
  const policy = o.policy();
  const decision = hasRules(policy)
    ? authorizeRequest(policy, o.l4, {
        method: headers[':method'] ?? '',
        path: target!,
        host,
        headers: headers.host === undefined && host ? { ...headers, host } : headers,
      })
    : ALLOWED_WITHOUT_POLICY;
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
        up = session.request(out, h2RequestOptions(endStream, !endStream));
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
    // the forwarded fields' own object, not a copy of it (a spread into a literal missed V8's
    // inline caches on every response)
    const head: http2.OutgoingHttpHeaders = forwardH2(h as Record<string, string | string[] | undefined>, false);
    head[':status'] = h[':status'] ?? 502;
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
