// The east-west gateway of a network (issue 13): HBONE on 15008 for node proxies of other
// networks, as Istio ambient's east-west gateway does with "double HBONE". A node proxy in
// another network opens mutual TLS to the gateway with its source workload's SVID and asks,
// with an HTTP/2 CONNECT, for a node proxy of this network (`:authority` = `<node ip>:15008`);
// the gateway checks the address and splices the stream to it. Inside that stream the
// source runs its usual HBONE to the destination's node proxy: TLS from the source identity
// to the destination identity, end to end. So the gateway never sees a pod's bytes in
// plaintext, the destination proxy authorizes the real source principal (AuthorizationPolicy
// and STRICT hold across networks), and nothing but mTLS crosses between networks.
//
// What the gateway itself allows:
// - only peers with an SVID of the mesh's trust bundle (any workload of the mesh: the
//   destination proxy decides what that workload may reach);
// - only CONNECT, only to the HBONE port of an address `allowed` names (the node proxies of
//   its network, from the snapshot): it is no open relay into the network (400 otherwise);
// - every tunnel has an end: the connect to the node proxy times out, a connection without
//   streams is closed after the idle timeout, an error on either side resets the other.
import http2, { type Http2SecureServer, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type TLSSocket } from 'node:tls';
import { logger } from '../../common/log.js';
import type { IdentityProvider } from '../identity/identity.js';
import { proxyErrors } from '../telemetry/metrics.js';
import { dialTcp, UpstreamError } from '../transport/connector.js';
import { ResponseFlag } from '../transport/response-flags.js';
import { relay } from '../transport/relay.js';
import { closeIdleSession, DEFAULT_TIMEOUTS } from '../transport/timeouts.js';
import {
  HBONE_CONNECTION_WINDOW,
  HBONE_TLS_MIN_VERSION,
  parseAuthority,
  svidSpiffeId,
} from './protocol.js';
import { createHboneListener, listenHbone } from './listener.js';

const log = logger('agent/hbone-gateway');

export interface HboneGatewayOptions {
  host: string;
  port?: number;
  identity: IdentityProvider;
  /**
   * the gateway's own identity: the certificate it presents (whatever the SNI); a function
   * when it comes from the snapshot (gateway mode), undefined while it is not known yet
   */
  spiffeId: string | (() => string | undefined);
  /** may a tunnel go to `ip:port`? (a node proxy's HBONE port in the gateway's network) */
  allowed: (ip: string, port: number) => boolean;
  /** SO_MARK on the sockets to node proxies (none in tests) */
  mark?: number;
  connectTimeoutMs?: number;
  /** a connection without streams is closed after this long (default: the HTTP idle timeout) */
  idleTimeoutMs?: number;
  /** told of every tunnel and refusal (gateway mode's /metrics: telemetry/gateway-metrics.ts) */
  observer?: GatewayObserver;
}

/**
 * Why the gateway refused a peer or a stream:
 * - `handshake`: the TLS handshake failed (no client certificate, one outside the trust
 *   bundle, or the gateway has no certificate of its own yet);
 * - `peer_identity`: a certificate of the bundle that is no workload SVID;
 * - `method`, `authority`, `target`: not a CONNECT, an unreadable `:authority`, or an address
 *   that is not the HBONE port of a node proxy in the gateway's network (400);
 * - `upstream`: the node proxy could not be reached (503).
 */
export type GatewayRefusal = 'handshake' | 'peer_identity' | 'method' | 'authority' | 'target' | 'upstream';

export interface GatewayObserver {
  tunnelOpened(): void;
  tunnelClosed(): void;
  refused(reason: GatewayRefusal): void;
}

/** Counts of what the gateway did, for /metrics and the tests. */
export interface GatewayStats {
  tunnels: number;
  open: number;
  /** streams refused (method, authority, target, upstream) */
  refused: number;
  /** peers refused at the handshake or for their certificate */
  refusedPeers: number;
}

export class HboneGateway {
  private readonly server: Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly sockets: Set<Socket>;
  private readonly tunnels = new Set<Duplex>();
  private readonly principals = new WeakMap<http2.Http2Session, string>();
  private context: { key: string; ctx: tls.SecureContext } | undefined;
  readonly stats: GatewayStats = { tunnels: 0, open: 0, refused: 0, refusedPeers: 0 };

  constructor(private readonly opts: HboneGatewayOptions) {
    const listener = createHboneListener({ SNICallback: (_servername, cb) => this.ownContext(cb), log });
    this.server = listener.server;
    this.sockets = listener.sockets;
    this.server.on('tlsClientError', () => this.refusePeer('handshake'));
    this.server.on('session', (session) => this.onSession(session));
    this.server.on('stream', (stream, headers) =>
      this.onStream(stream, headers).catch((err: Error) => this.refuse(stream, 503, 'upstream', err.message)),
    );
  }

  listen(fd?: number): Promise<void> {
    return listenHbone(this.server, log, fd, this.opts.host, this.opts.port);
  }

  get address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting; open tunnels are reset unless `graceful` (GOAWAY, then they finish). */
  async close(graceful = false): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) {
      if (graceful) s.close();
      else s.destroy();
    }
    if (!graceful) {
      for (const t of this.tunnels) t.destroy();
      for (const s of this.sockets) s.destroy();
    }
    await closed;
  }

  /** The gateway's certificate with the current trust bundle (rebuilt when either changes). */
  private ownContext(cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    const spiffeId = typeof this.opts.spiffeId === 'function' ? this.opts.spiffeId() : this.opts.spiffeId;
    if (!spiffeId) {
      // debug, not warn: every peer's handshake would log it; readiness and the scope log say why
      log.debug('the gateway does not know its own identity yet; handshake refused');
      cb(new Error('the gateway does not know its own identity yet'));
      return;
    }
    this.opts.identity.certificate(spiffeId).then(
      (cert) => {
        const bundle = this.opts.identity.trustBundle();
        const key = `${cert.certChainPem}\n${bundle.join('\n')}`;
        if (this.context?.key !== key) {
          this.context = { key, ctx: tls.createSecureContext({ cert: cert.certChainPem, key: cert.keyPem, ca: bundle, minVersion: HBONE_TLS_MIN_VERSION }) };
        }
        cb(null, this.context.ctx);
      },
      (err: Error) => {
        log.warn({ identity: spiffeId, err: err.message }, 'no certificate for the gateway; handshake refused');
        cb(err);
      },
    );
  }

  private onSession(session: http2.ServerHttp2Session): void {
    session.on('error', () => {});
    const socket = session.socket as TLSSocket;
    const peer = socket.getPeerX509Certificate();
    const principal = peer ? svidSpiffeId(peer) : { error: 'no client certificate' };
    if ('error' in principal) {
      proxyErrors.inc({ reason: ResponseFlag.IdentityError });
      log.warn({ peer: `${socket.remoteAddress}:${socket.remotePort}`, err: principal.error }, 'gateway peer is not a workload identity; closing');
      this.refusePeer('peer_identity');
      session.destroy();
      return;
    }
    this.principals.set(session, principal.id);
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.setLocalWindowSize(HBONE_CONNECTION_WINDOW);
    closeIdleSession(session, { ...DEFAULT_TIMEOUTS, httpIdleMs: this.opts.idleTimeoutMs ?? DEFAULT_TIMEOUTS.httpIdleMs });
  }

  private async onStream(stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    stream.on('error', () => {});
    const principal = stream.session ? this.principals.get(stream.session) : undefined;
    if (!principal) return this.refuse(stream, 400, 'peer_identity', 'connection without a verified peer');
    if (headers[':method'] !== 'CONNECT') return this.refuse(stream, 400, 'method', `method ${headers[':method']} is not CONNECT`);
    const target = parseAuthority(headers[':authority']);
    if (!target) return this.refuse(stream, 400, 'authority', `:authority ${headers[':authority']} is not <node ip>:<port>`);
    if (!this.opts.allowed(target.ip, target.port))
      return this.refuse(stream, 400, 'target', `${target.ip}:${target.port} is not the HBONE port of a node proxy in this network`);
    let upstream: Socket;
    try {
      upstream = await dialTcp(target.ip, target.port, {
        timeoutMs: this.opts.connectTimeoutMs ?? 10_000,
        allowHalfOpen: true,
        ...(this.opts.mark === undefined ? {} : { mark: this.opts.mark }),
      });
    } catch (err) {
      return this.refuse(stream, 503, 'upstream', err instanceof UpstreamError ? err.message : String(err));
    }
    if (stream.destroyed || stream.closed) {
      upstream.destroy();
      return;
    }
    stream.respond({ ':status': 200 });
    this.stats.tunnels++;
    this.stats.open++;
    this.opts.observer?.tunnelOpened();
    this.tunnels.add(upstream);
    log.debug({ principal, to: `${target.ip}:${target.port}` }, 'gateway tunnel open');
    upstream.once('close', () => {
      this.tunnels.delete(upstream);
      this.stats.open--;
      this.opts.observer?.tunnelClosed();
      stream.destroy();
    });
    stream.once('close', () => upstream.destroy());
    upstream.on('error', () => stream.destroy());
    relay(stream, upstream);
  }

  private refusePeer(reason: GatewayRefusal): void {
    this.stats.refusedPeers++;
    this.opts.observer?.refused(reason);
  }

  private refuse(stream: ServerHttp2Stream, status: number, reason: GatewayRefusal, message: string): void {
    this.stats.refused++;
    this.opts.observer?.refused(reason);
    proxyErrors.inc({ reason: 'gateway_refused' });
    log.debug({ status, reason: message }, 'gateway stream refused');
    if (stream.destroyed || stream.closed) return;
    if (!stream.headersSent) stream.respond({ ':status': status }, { endStream: true });
    else stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  }
}
