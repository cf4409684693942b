// HBONE, server side: the node proxy's port 15008 on the node's address. Peers (other node
// proxies) open mutual-TLS HTTP/2 connections and one CONNECT stream per tunnelled TCP
// connection; each stream is delivered to the local pod its `:authority` names.
//
// - TLS 1.3, ALPN h2 only (listener.ts, shared with the east-west gateway). The client must present a certificate chaining to the trust
//   bundle ("accept only … with a client certificate chaining to the trust bundle"), and it
//   must be an SVID: its SPIFFE ID is the peer principal for policy and telemetry.
// - The server certificate is chosen per connection by SNI (see hbone-tls.ts): the
//   identity of the meshed pod on this node that the SNI names. Any other SNI (none, a pod
//   elsewhere, a pod not meshed) aborts the handshake: this proxy speaks for its pods only.
// - Per stream, as ztunnel answers: a method other than CONNECT → 400; an `:authority` that
//   is not `<ip>:<port>` of a meshed pod on this node, or a pod of another identity than
//   the one this connection presented → 400; then deliverInbound (inbound policy, then TCP
//   to the pod): 200 once the pod accepted, 401 when policy denies, 503 when the pod
//   refuses; after 200 the stream is a byte pipe.
// - Every connection has an end: a TLS handshake within Node's handshakeTimeout (120 s), and
//   a connection without streams is closed (GOAWAY) after the HTTP idle timeout (1 h,
//   transport/timeouts.ts; the clients' pools close theirs after 5 min, before this side); a
//   connection quiet for the keepalive interval must answer a PING (transport/timeouts.ts).
import http2, { type Http2SecureServer, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import tls from 'node:tls';
import { logger } from '../../common/log.js';
import type { Workload } from '../../control/api/snapshot.js';
import { proxyErrors } from '../telemetry/metrics.js';
import {
  HBONE_CONNECTION_WINDOW,
  HBONE_TLS_MIN_VERSION,
  parseAuthority,
  parseForwardedFor,
  podIpFromSni,
  svidSpiffeId,
} from './protocol.js';
import { createHboneListener, listenHbone } from './listener.js';
import type { IdentityProvider, WorkloadCertificate } from '../identity/identity.js';
import type { InboundDeliver } from '../proxy/inbound-capture.js';
import type { InboundConnection } from '../proxy/inbound-delivery.js';
import type { ProxyState } from '../state/proxy-state.js';
import { ResponseFlag } from '../transport/response-flags.js';
import { closeIdleSession, DEFAULT_TIMEOUTS, type ProxyTimeouts } from '../transport/timeouts.js';

const log = logger('agent/hbone-inbound');

export interface HboneInboundOptions {
  /** the node's address (the proxy IP) */
  host: string;
  port?: number;
  /** this node's name: only its pods are served */
  node: string;
  identity: IdentityProvider;
  /** the current proxy state (which workload owns an address) */
  state: () => Pick<ProxyState, 'workloadByIp'>;
  /** deliverInbound with the agent's pod connector and current policy bound */
  deliver: InboundDeliver;
  maxConcurrentStreams?: number;
  /** a connection without streams is closed after this long (default: the HTTP idle timeout) */
  idleTimeoutMs?: number;
  /** the HTTP/2 keepalive (transport/timeouts.ts defaults) */
  keepalive?: Partial<Pick<ProxyTimeouts, 'http2KeepaliveIntervalMs' | 'http2KeepaliveTimeoutMs'>>;
}

/** What the TLS layer established for one connection. */
interface PeerInfo {
  /** SPIFFE ID of the client certificate (verified chain) */
  principal: string;
  /** SPIFFE ID of the certificate this server presented */
  presented: string;
  /** for /debug: serial numbers (hex) of the peer's and of our certificate, where from, since when */
  peerSerial: string;
  presentedSerial: string;
  peerAddress: string;
  openedAt: string;
}

/** One open HBONE connection as /debug shows it. */
export interface HboneSessionInfo {
  principal: string;
  peerSerial: string;
  presented: string;
  presentedSerial: string;
  /** the peer node proxy's ip:port */
  peerAddress: string;
  /** when the connection was accepted (ISO 8601) */
  openedAt: string;
}

export class HboneInbound {
  private readonly server: Http2SecureServer;
  private readonly contexts = new Map<string, { pem: string; bundle: string; ctx: tls.SecureContext }>();
  private readonly peers = new WeakMap<http2.Http2Session, PeerInfo>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** close() began: 'drain' (graceful: GOAWAY, open streams finish) or 'cut' */
  private closing: 'drain' | 'cut' | undefined;
  /** every accepted TCP connection, also those still in (or failed at) the handshake */
  private readonly sockets: Set<Socket>;

  constructor(private readonly opts: HboneInboundOptions) {
    const listener = createHboneListener({
      // no default certificate: a handshake without our SNI has nothing to be answered with
      SNICallback: (servername, cb) => this.contextFor(servername, cb),
      ...(opts.maxConcurrentStreams ? { maxConcurrentStreams: opts.maxConcurrentStreams } : {}),
      log,
    });
    this.server = listener.server;
    this.sockets = listener.sockets;
    this.server.on('session', (session) => this.onSession(session));
    this.server.on('stream', (stream, headers) =>
      this.onStream(stream, headers).catch((err: Error) => {
        log.warn({ err: err.message }, 'HBONE stream failed');
        refuse(stream, 503, err.message);
      }),
    );
  }

  /** `fd`: a listening socket the agent made or took over from its predecessor (agent/lifecycle/). */
  listen(fd?: number): Promise<void> {
    return listenHbone(this.server, log, fd, this.opts.host, this.opts.port);
  }

  /**
   * A connection accepted elsewhere (a worker's primary hands it over): served as one accepted
   * here. One handed over after close() began (the primary accepted it before the drain) gets
   * what the open ones got: a GOAWAY as soon as its session is up (graceful), or its end.
   */
  accept(socket: Socket): void {
    if (this.closing === 'cut') socket.destroy();
    else this.server.emit('connection', socket);
  }

  get address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** HBONE connections (HTTP/2 sessions) open now */
  get connections(): number {
    return this.sessions.size;
  }

  /** The open connections: who the peer proved to be and which certificates either side used. */
  sessionsInfo(): HboneSessionInfo[] {
    return [...this.sessions].flatMap((s) => {
      const p = this.peers.get(s);
      return p ? [{ ...p }] : [];
    });
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** Stops accepting; open tunnels are reset unless `graceful` (GOAWAY, then they finish). */
  async close(graceful = false): Promise<void> {
    this.closing = graceful ? 'drain' : 'cut';
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) {
      if (graceful) s.close();
      else s.destroy();
    }
    if (!graceful) for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** The certificate of the meshed local pod the SNI names, with the current trust bundle. */
  private contextFor(servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    const ip = podIpFromSni(servername);
    const pod = ip ? this.opts.state().workloadByIp(ip) : undefined;
    if (!pod || !pod.meshed || pod.node !== this.opts.node) {
      cb(new Error(`SNI ${servername} names no meshed pod on node ${this.opts.node}`));
      return;
    }
    this.opts.identity.certificate(pod.spiffeId).then(
      (cert) => cb(null, this.secureContext(pod.spiffeId, cert)),
      (err: Error) => {
        log.warn({ identity: pod.spiffeId, err: err.message }, 'no certificate to present for a local pod; HBONE handshake refused');
        cb(err);
      },
    );
  }

  /** Secure contexts are cached per identity and rebuilt when the certificate or the bundle changes. */
  private secureContext(identity: string, cert: WorkloadCertificate): tls.SecureContext {
    const bundle = this.opts.identity.trustBundle().join('\n');
    const cached = this.contexts.get(identity);
    if (cached && cached.pem === cert.certChainPem && cached.bundle === bundle) return cached.ctx;
    const ctx = tls.createSecureContext({
      cert: cert.certChainPem,
      key: cert.keyPem,
      ca: this.opts.identity.trustBundle(),
      minVersion: HBONE_TLS_MIN_VERSION,
    });
    this.contexts.set(identity, { pem: cert.certChainPem, bundle, ctx });
    return ctx;
  }

  /** The chain verified (rejectUnauthorized); the peer must also be an SVID. */
  private onSession(session: http2.ServerHttp2Session): void {
    session.on('error', () => {});
    const socket = session.socket as TLSSocket;
    const peer = socket.getPeerX509Certificate();
    const own = socket.getX509Certificate();
    const principal = peer ? svidSpiffeId(peer) : { error: 'no client certificate' };
    const presented = own ? svidSpiffeId(own) : { error: 'no server certificate' };
    if ('error' in principal || 'error' in presented) {
      proxyErrors.inc({ reason: ResponseFlag.IdentityError });
      log.warn(
        {
          peer: `${socket.remoteAddress}:${socket.remotePort}`,
          err: 'error' in principal ? principal.error : (presented as { error: string }).error,
        },
        'HBONE peer is not a workload identity; closing',
      );
      session.destroy();
      return;
    }
    this.peers.set(session, {
      principal: principal.id,
      presented: presented.id,
      peerSerial: peer!.serialNumber,
      presentedSerial: own!.serialNumber,
      peerAddress: `${socket.remoteAddress}:${socket.remotePort}`,
      openedAt: new Date().toISOString(),
    });
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    if (this.closing) {
      // handed over after close() (accept): no new streams here, as for the sessions close() found
      if (this.closing === 'drain') session.close();
      else session.destroy();
      return;
    }
    session.setLocalWindowSize(HBONE_CONNECTION_WINDOW);
    closeIdleSession(session, { ...DEFAULT_TIMEOUTS, ...this.opts.keepalive, httpIdleMs: this.opts.idleTimeoutMs ?? DEFAULT_TIMEOUTS.httpIdleMs });
  }

  private async onStream(stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    stream.on('error', () => {}); // the delivery and the pod side handle its end
    const session = stream.session;
    const peer = session ? this.peers.get(session) : undefined;
    if (!peer) return refuse(stream, 400, 'connection without a verified peer');
    // "The inbound side rejects anything but CONNECT."
    if (headers[':method'] !== 'CONNECT') return refuse(stream, 400, `method ${headers[':method']} is not CONNECT`);
    const target = parseAuthority(headers[':authority']);
    if (!target) return refuse(stream, 400, `:authority ${headers[':authority']} is not <pod ip>:<port>`);
    const pod = this.opts.state().workloadByIp(target.ip);
    if (!pod || !pod.meshed || pod.node !== this.opts.node) {
      return refuse(stream, 400, `${target.ip} is not a meshed pod on node ${this.opts.node}`);
    }
    if (pod.spiffeId !== peer.presented) {
      // the client verified the identity we presented; deliver nothing to another one
      return refuse(stream, 400, `${target.ip} runs as ${pod.spiffeId}, this connection is for ${peer.presented}`);
    }
    const from = parseForwardedFor(headers.forwarded);
    const result = await this.opts.deliver(stream, {
      destination: pod,
      port: target.port,
      sourceIp: from?.ip ?? session!.socket.remoteAddress ?? '',
      sourcePort: from?.port ?? 0,
      sourcePrincipal: peer.principal,
      security: 'mutual_tls',
    });
    if (stream.destroyed || stream.closed) return;
    if (result.delivered) {
      if (!stream.headersSent) stream.respond({ ':status': 200 });
      return;
    }
    proxyErrors.inc({ reason: result.flag });
    refuse(stream, result.flag === ResponseFlag.Deny ? 401 : 503, result.reason);
  }
}

function refuse(stream: ServerHttp2Stream, status: number, reason: string): void {
  log.debug({ status, reason }, 'HBONE stream refused');
  if (stream.destroyed || stream.closed) return;
  if (!stream.headersSent) stream.respond({ ':status': status }, { endStream: true });
  else stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
}

/**
 * The workload an inbound connection comes from, for telemetry and policy: the owner of
 * its source address — for a tunnel, the address its peer claims (`forwarded: for=`), which
 * is believed only when that workload runs as the principal the peer proved.
 */
export function provenSourceWorkload(c: InboundConnection, state: Pick<ProxyState, 'workloadByIp'>): Workload | undefined {
  const w = state.workloadByIp(c.sourceIp);
  if (!w) return undefined;
  if (c.security === 'none') return w;
  return c.sourcePrincipal !== undefined && w.spiffeId === c.sourcePrincipal ? w : undefined;
}
