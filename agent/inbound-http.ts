// HTTP/1.1 at the destination's node proxy, for workloads whose AuthorizationPolicies test
// HTTP attributes (and only for them: every other inbound stream stays a byte pipe).
// Node's own HTTP parser (llhttp) reads the requests from the inbound stream, so framing is
// strict (a request the pod would read differently from the proxy is refused with 400,
// not forwarded); each request is authorised on its own (keep-alive and pipelining: every
// request of the connection is evaluated, responses go back in order). A denied request
// gets Envoy's answer, 403 "RBAC: access denied"; an allowed one is forwarded to the pod
// with its path normalised as it was evaluated, over one pod connection per inbound
// connection (reopened if the pod closes it).
//
// Not done: HTTP/2 (h2c, gRPC) at the destination. A stream that does not start with an
// HTTP/1.x request line is evaluated as TCP (see inbound-delivery.ts), which is fail-safe:
// DENY rules with HTTP fields match it and ALLOW rules with HTTP fields do not.
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { logger } from '../control/api/log.js';
import { authorizeRequest, type AuthorizationResult, type L4Attributes, type WorkloadPolicy } from './authorization.js';
import { normalizePath } from './authorization-match.js';

const log = logger('agent/inbound-http');

/** Envoy's RBAC filter answers a denied request with this body. */
export const RBAC_DENIED_BODY = 'RBAC: access denied';

// RFC 9110 §7.6.1 hop-by-hop fields: never forwarded (Node frames each side itself)
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

export interface HttpInboundOptions {
  policy: WorkloadPolicy;
  l4: L4Attributes;
  /** a new connection to the pod (the first request reuses `first`) */
  connect: () => Promise<Duplex>;
  first: Duplex;
  /** called with every request decision (metrics) */
  onDecision: (r: AuthorizationResult) => void;
}

/**
 * Serves `stream` (whose first bytes look like an HTTP/1.x request line) until either side
 * closes it. Resolves when the inbound stream is done.
 */
export function serveHttpInbound(stream: Duplex, o: HttpInboundOptions): Promise<void> {
  const agent = new PodAgent(o.first, o.connect);
  const server = http.createServer({ maxHeaderSize: 64 * 1024 });
  // the peer's connection is the mesh's to keep open, as Envoy's 1 h idle timeout
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  server.headersTimeout = 0;

  server.on('request', (req, res) => handle(req, res, o, agent, false));
  // "Expect: 100-continue": decide before the client sends its body; a denied request gets
  // its 403 without a 100 Continue
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => handle(req, res, o, agent, true));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => tunnel(req, socket, head, o));
  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => tunnel(req, socket, head, o));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (socket.writable && err.code !== 'ECONNRESET')
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  return new Promise((resolve) => {
    stream.once('close', () => {
      agent.destroy();
      resolve();
    });
    server.emit('connection', stream);
    stream.resume(); // deliverInbound paused it to read the request line
  });
}

function handle(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  o: HttpInboundOptions,
  agent: PodAgent,
  expectsContinue: boolean,
): void {
  res.sendDate = false;
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
  // the 100 Continue is ours; the pod gets the body without being asked
  if (expectsContinue) res.writeContinue();
  const headers = forwardable(req.rawHeaders, req.headers.connection, expectsContinue ? ['expect'] : []);

  const upstream = http.request({
    agent,
    method: req.method,
    path: normalized.target,
    headers,
    setHost: false,
  });
  upstream.on('response', (up) => {
    res.writeHead(up.statusCode ?? 502, up.statusMessage, forwardable(up.rawHeaders, up.headers.connection, []));
    up.pipe(res);
    up.on('error', () => res.destroy());
  });
  upstream.on('error', (err) => {
    log.debug({ err }, 'pod request failed');
    if (!res.headersSent) reply(res, 503, 'upstream connect error or disconnect/reset before headers');
    else res.destroy();
  });
  req.pipe(upstream);
  req.on('error', () => upstream.destroy());
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
    },
    () => socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'),
  );
}

function reply(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** rawHeaders without the hop-by-hop fields and those the Connection header names. */
function forwardable(raw: readonly string[], connection: string | undefined, also: readonly string[]): string[] {
  const drop = new Set([...HOP_BY_HOP, ...also]);
  for (const name of (connection ?? '').split(',')) if (name.trim()) drop.add(name.trim().toLowerCase());
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!drop.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

/**
 * One pod connection at a time for one inbound connection, kept alive between requests.
 * The first connection is the one deliverInbound already made; later ones (after the pod
 * closed one) come from the connector. Sockets may be any Duplex (not only net.Socket).
 */
class PodAgent extends http.Agent {
  constructor(
    private first: Duplex | undefined,
    private readonly open: () => Promise<Duplex>,
  ) {
    super({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
  }

  override createConnection(_opts: unknown, cb: (err: Error | null, socket?: Duplex) => void): undefined {
    const first = this.first;
    this.first = undefined;
    if (first && !first.destroyed) {
      process.nextTick(cb, null, first);
      return undefined;
    }
    this.open().then(
      (s) => cb(null, s),
      (err: Error) => cb(err),
    );
    return undefined;
  }

  override destroy(): void {
    this.first?.destroy();
    this.first = undefined;
    super.destroy();
  }

  override keepSocketAlive(socket: Duplex): boolean {
    const s = socket as Duplex & { setKeepAlive?: unknown };
    return typeof s.setKeepAlive === 'function' ? (super.keepSocketAlive(socket) as unknown as boolean) : true;
  }

  override reuseSocket(socket: Duplex, req: http.ClientRequest): void {
    const s = socket as Duplex & { ref?: unknown };
    if (typeof s.ref === 'function') super.reuseSocket(socket, req);
  }
}
