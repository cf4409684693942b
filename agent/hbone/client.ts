// HBONE, client side: a connection to a meshed workload on another node is carried as an
// HTTP/2 CONNECT stream over mutual TLS to that node's proxy on 15008, as Istio ambient's
// ztunnel does:
//   "mTLS to port 15008 with ALPN h2; each tunnelled connection is an HTTP/2 CONNECT with
//    :authority = <destination pod IP>:<port>; request headers forwarded: for="<src ip:port>",
//    traceparent … The client checks the server's SPIFFE URI SAN itself."
// The client certificate is the SOURCE workload's SVID, never the node's. The server's
// certificate must chain to the mesh's trust bundle and carry exactly the SPIFFE ID the
// control plane says the destination runs as (node's hostname check is replaced by ours).
//
// A destination whose node proxy is in another network is reached through that network's
// east-west gateway (gateway.ts): the same TLS and HTTP/2, run inside a CONNECT stream of an
// HBONE connection to the gateway ("double HBONE"), so the end-to-end identities are the same.
//
// Failures map to ztunnel's response flags: TCP refused/unreachable/timeout → UF; TLS
// handshake failed (alert, bad chain, expired) → TLS_FAILURE; server identity not the
// expected one → IDENTITY_ERROR; no HTTP/2 (ALPN, SETTINGS) → H2_HANDSHAKE_FAILURE;
// CONNECT answered 401/403 → DENY, any other non-200 or a reset stream → CONNECT.
import { createHash } from 'node:crypto';
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { joinHostPort } from '../../common/host-port.js';
import { logger } from '../../common/log.js';
import type { Workload } from '../../control/api/snapshot.js';
import { HbonePool, type HbonePoolOptions } from './pool.js';
import {
  HBONE_ALPN,
  HBONE_CONNECTION_WINDOW,
  HBONE_MAX_FRAME,
  HBONE_PORT,
  HBONE_STREAM_WINDOW,
  HBONE_TLS_MIN_VERSION,
  forwardedFor,
  sniForPodIp,
  svidSpiffeId,
} from './protocol.js';
import type { IdentityProvider, WorkloadCertificate } from '../identity/identity.js';
import { ResponseFlag, type ResponseFlagValue } from '../transport/response-flags.js';
import { dialTcp, UpstreamError, type UpstreamConnector, type UpstreamRequest, type UpstreamSecurity } from '../transport/connector.js';

import { sameIdentity } from './identity-match.js';
import '../transport/async-bind-fix.js'; // HTTP/2 streams without DEP0172's per-stream cost

const log = logger('agent/hbone-outbound');
import { h2RequestOptions } from '../transport/http2-request-options.js';

export interface HboneConnectorOptions {
  identity: IdentityProvider;
  /** where the node proxy of a workload's node listens (its node's IP), if known */
  nodeIp: (w: Workload) => string | undefined;
  /** HBONE port of the peers (15008; tests use another) */
  port?: number;
  /** SO_MARK on the sockets to peers, so the datapath never redirects them; none in tests */
  mark?: number;
  connectTimeoutMs?: number;
  pool?: HbonePoolOptions;
  /**
   * The east-west gateway a destination is reached through (its node proxy is in another
   * network: issue 13), or undefined to dial its node proxy directly. It may throw an
   * UpstreamError (UF) when the destination needs a gateway and none is known.
   */
  via?: (w: Workload) => GatewayRoute | undefined;
  /**
   * The trust domains that are one (the snapshot's: the mesh's own, then its aliases): a server
   * proving the expected path in any of them is the expected identity (identity-match.ts)
   */
  trustDomains?: () => readonly string[];
}

/** An east-west gateway (agent/hbone/gateway.ts): where it listens and who it must prove to be. */
export interface GatewayRoute {
  address: string;
  port: number;
  /** the SPIFFE ID the gateway's certificate must carry */
  identity: string;
}

/** The SNI sent to a gateway: it presents its own certificate whatever is asked (not an IP: RFC 6066). */
const GATEWAY_SNI = 'hbone-gateway.nodemesh';

/** The server presented a valid certificate of the wrong workload. */
class IdentityMismatch extends Error {}

export class HboneConnector implements UpstreamConnector {
  readonly pool: HbonePool;
  private readonly port: number;
  private readonly connectTimeoutMs: number;

  constructor(private readonly opts: HboneConnectorOptions) {
    this.pool = new HbonePool(opts.pool);
    this.port = opts.port ?? HBONE_PORT;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  }

  security(req: UpstreamRequest): UpstreamSecurity | undefined {
    if (!req.source || !req.destination) return undefined;
    return { policy: 'mutual_tls', sourcePrincipal: req.source.spiffeId, destinationPrincipal: req.destination.spiffeId };
  }

  async connect(req: UpstreamRequest): Promise<Duplex> {
    const src = req.source;
    const dst = req.destination;
    if (!src || !dst) {
      throw new UpstreamError(ResponseFlag.IdentityError, `HBONE to ${req.ip}:${req.port} needs a known source and destination workload`);
    }
    const nodeIp = this.opts.nodeIp(dst);
    if (!nodeIp) {
      throw new UpstreamError(
        ResponseFlag.UpstreamConnectionFailure,
        `no address for node ${dst.node} of ${dst.uid}: the snapshot lists none (does the Node have an InternalIP?)`,
      );
    }
    let cert: WorkloadCertificate;
    try {
      cert = await this.opts.identity.certificate(src.spiffeId);
    } catch (err) {
      throw new UpstreamError(ResponseFlag.IdentityError, `no certificate for source ${src.spiffeId}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const bundle = this.opts.identity.trustBundle();
    if (bundle.length === 0) {
      throw new UpstreamError(ResponseFlag.TlsFailure, 'no trust bundle yet: cannot verify the peer node proxy');
    }
    const generation = createHash('sha256').update(cert.certChainPem).update(bundle.join('\n')).digest('base64url').slice(0, 16);
    const via = this.opts.via?.(dst);
    const key = via ? `${src.spiffeId} ${dst.spiffeId} ${nodeIp} via ${via.address}:${via.port}` : `${src.spiffeId} ${dst.spiffeId} ${nodeIp}`;
    const dial = via
      ? () => this.dialVia(via, nodeIp, src, dst, cert, bundle, generation)
      : () => this.dial(nodeIp, dst, cert, bundle);
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'CONNECT',
      ':authority': joinHostPort(req.ip, req.port),
      forwarded: forwardedFor(req.sourceAddress, req.sourcePort),
    };
    if (req.traceparent) headers.traceparent = req.traceparent;
    // A pooled connection can go away between acquire and request (GOAWAY, peer close):
    // the stream was never sent, so it is safe to take (or dial) another, once.
    for (let attempt = 1; ; attempt++) {
      const lease = await this.pool.acquire(key, generation, dial);
      let stream: ClientHttp2Stream;
      try {
        if (lease.session.closed || lease.session.destroyed) throw new Error('pooled connection closed');
        stream = lease.session.request(headers, h2RequestOptions(false));
      } catch (err) {
        lease.release();
        if (attempt < 2) continue;
        throw new UpstreamError(ResponseFlag.Connect, `CONNECT ${req.ip}:${req.port} via ${nodeIp}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      stream.once('close', () => lease.release());
      return this.awaitResponse(stream, `${req.ip}:${req.port} via ${nodeIp}:${this.port}`);
    }
  }

  close(): void {
    this.pool.close();
  }

  private awaitResponse(stream: ClientHttp2Stream, where: string): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const fail = (flag: ResponseFlagValue, message: string, cause?: unknown) => {
        cleanup();
        stream.destroy();
        reject(new UpstreamError(flag, `CONNECT ${where}: ${message}`, { cause }));
      };
      const onResponse = (headers: http2.IncomingHttpHeaders) => {
        const status = Number(headers[':status']);
        if (status === 200) {
          cleanup();
          resolve(stream);
        } else if (status === 401 || status === 403) {
          fail(ResponseFlag.Deny, `denied by the destination (${status})`);
        } else {
          fail(ResponseFlag.Connect, `answered ${status}`);
        }
      };
      const onError = (err: Error) => fail(ResponseFlag.Connect, err.message, err);
      const onClose = () => fail(ResponseFlag.Connect, `stream closed before a response (code ${stream.rstCode})`);
      // the peer's answer waits on its connect to the pod; a peer that never answers is a failure
      const timer = setTimeout(() => fail(ResponseFlag.Connect, `no answer within ${this.connectTimeoutMs} ms`), this.connectTimeoutMs);
      timer.unref();
      const cleanup = () => {
        clearTimeout(timer);
        stream.off('response', onResponse);
        stream.off('error', onError);
        stream.off('close', onClose);
      };
      stream.once('response', onResponse);
      stream.once('error', onError);
      stream.once('close', onClose);
    });
  }

  /** TCP, then TLS (checking the peer), then HTTP/2 until the peer's SETTINGS arrive. */
  private async dial(nodeIp: string, dst: Workload, cert: WorkloadCertificate, bundle: string[]): Promise<ClientHttp2Session> {
    const where = `${nodeIp}:${this.port} (for ${dst.spiffeId})`;
    const socket = await this.tcp(nodeIp, this.port, where);
    const secured = await this.tls(socket, sniForPodIp(dst.ip), dst.spiffeId, cert, bundle, where);
    return this.h2(secured, socket, nodeIp, where);
  }

  /**
   * Double HBONE through an east-west gateway: an HBONE connection to the gateway (pooled
   * per source identity and gateway) carries a CONNECT to the destination's node proxy, and
   * inside that stream the usual TLS and HTTP/2 run from the source identity to the
   * destination's, end to end. The inner connection holds its stream of the outer one until
   * it closes.
   */
  private async dialVia(
    via: GatewayRoute,
    nodeIp: string,
    src: Workload,
    dst: Workload,
    cert: WorkloadCertificate,
    bundle: string[],
    generation: string,
  ): Promise<ClientHttp2Session> {
    const gateway = `gateway ${joinHostPort(via.address, via.port)}`;
    const outer = await this.pool.acquire(`${src.spiffeId} ${gateway}`, generation, async () => {
      const socket = await this.tcp(via.address, via.port, `${gateway} (${via.identity})`);
      const secured = await this.tls(socket, GATEWAY_SNI, via.identity, cert, bundle, gateway);
      return this.h2(secured, socket, via.address, gateway);
    });
    let stream: ClientHttp2Stream;
    try {
      if (outer.session.closed || outer.session.destroyed) throw new Error('pooled gateway connection closed');
      stream = outer.session.request({ ':method': 'CONNECT', ':authority': joinHostPort(nodeIp, this.port) }, h2RequestOptions(false));
    } catch (err) {
      outer.release();
      throw new UpstreamError(ResponseFlag.Connect, `CONNECT ${nodeIp}:${this.port} via ${gateway}: ${(err as Error).message}`, { cause: err });
    }
    stream.once('close', () => outer.release());
    const tunnel = await this.awaitResponse(stream, `${nodeIp}:${this.port} via ${gateway}`);
    const where = `${nodeIp}:${this.port} via ${gateway} (for ${dst.spiffeId})`;
    const secured = await this.tls(tunnel, sniForPodIp(dst.ip), dst.spiffeId, cert, bundle, where);
    const session = await this.h2(secured, tunnel, nodeIp, where);
    session.once('close', () => tunnel.destroy());
    return session;
  }

  private tcp(ip: string, port: number, where: string): Promise<net.Socket> {
    return dialTcp(ip, port, {
      ...(this.opts.mark === undefined ? {} : { mark: this.opts.mark }),
      timeoutMs: this.connectTimeoutMs,
      where,
      hint: ` (is the node's agent up? does a NetworkPolicy block HBONE port ${port}?)`,
    });
  }

  /** TLS over `socket` (a TCP socket, or a CONNECT stream through a gateway), the peer proving `expected`. */
  private tls(socket: Duplex, servername: string, expected: string, cert: WorkloadCertificate, bundle: string[], where: string): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const secured = tls.connect({
        socket,
        servername,
        ALPNProtocols: [HBONE_ALPN],
        minVersion: HBONE_TLS_MIN_VERSION,
        cert: cert.certChainPem,
        key: cert.keyPem,
        ca: bundle,
        rejectUnauthorized: true,
        // Runs only once the chain verified against `ca`. Instead of a hostname check:
        // "The client checks the server's SPIFFE URI SAN itself."
        checkServerIdentity: (_host, peer) => {
          const svid = svidSpiffeId(peer);
          if ('error' in svid) return new IdentityMismatch(`server certificate is not an SVID: ${svid.error}`);
          if (!sameIdentity(svid.id, expected, this.opts.trustDomains?.() ?? [])) return new IdentityMismatch(`server is ${svid.id}, expected ${expected}`);
          return undefined;
        },
      });
      secured.setTimeout(this.connectTimeoutMs);
      const fail = (flag: ResponseFlagValue, message: string, cause?: unknown) => {
        secured.destroy();
        socket.destroy();
        reject(new UpstreamError(flag, `TLS to ${where}: ${message}`, { cause }));
      };
      const onError = (err: Error) => {
        if (err instanceof IdentityMismatch) fail(ResponseFlag.IdentityError, err.message, err);
        else fail(ResponseFlag.TlsFailure, err.message, err);
      };
      secured.once('timeout', () => fail(ResponseFlag.TlsFailure, `handshake timed out after ${this.connectTimeoutMs} ms`));
      secured.once('error', onError);
      secured.once('secureConnect', () => {
        secured.setTimeout(0);
        secured.removeAllListeners('timeout');
        secured.off('error', onError);
        if (secured.alpnProtocol !== HBONE_ALPN) {
          secured.destroy();
          reject(new UpstreamError(ResponseFlag.H2HandshakeFailure, `${where} did not agree to ALPN ${HBONE_ALPN}`));
          return;
        }
        resolve(secured);
      });
    });
  }

  private h2(secured: tls.TLSSocket, socket: Duplex, nodeIp: string, where: string): Promise<ClientHttp2Session> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(`https://${joinHostPort(nodeIp, this.port)}`, {
        createConnection: () => secured,
        settings: { enablePush: false, initialWindowSize: HBONE_STREAM_WINDOW, maxFrameSize: HBONE_MAX_FRAME },
      });
      const timer = setTimeout(
        () => fail(new Error(`no HTTP/2 SETTINGS within ${this.connectTimeoutMs} ms`), ResponseFlag.H2HandshakeFailure),
        this.connectTimeoutMs,
      );
      timer.unref();
      const fail = (err: Error, flag: ResponseFlagValue) => {
        clearTimeout(timer);
        session.destroy();
        secured.destroy();
        socket.destroy();
        reject(
          new UpstreamError(flag, `${flag === ResponseFlag.TlsFailure ? 'TLS' : 'HTTP/2'} with ${where}: ${err.message}`, { cause: err }),
        );
      };
      // With TLS 1.3 the server judges our certificate after our side of the handshake is
      // done: its refusal arrives as the first thing read — an alert, or (Node's TLS) the
      // connection closed without a record. Bytes that are not HTTP/2 are an h2 failure.
      const onError = (err: Error) => {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        const tls = /SSL|TLS|alert/i.test(`${code} ${err.message}`) || code === 'ECONNRESET' || code === 'EPIPE';
        fail(err, tls ? ResponseFlag.TlsFailure : ResponseFlag.H2HandshakeFailure);
      };
      const onClose = () =>
        fail(
          new Error(
            'the peer closed the connection right after the TLS handshake: did it refuse our certificate (trust bundle, validity)?',
          ),
          ResponseFlag.TlsFailure,
        );
      session.once('error', onError);
      session.once('close', onClose);
      session.once('remoteSettings', () => {
        clearTimeout(timer);
        session.off('error', onError);
        session.off('close', onClose);
        session.setLocalWindowSize(HBONE_CONNECTION_WINDOW);
        // an error later (peer reset, GOAWAY with error) reaches the streams; the pool drops it
        session.on('error', (err) => log.debug({ peer: where, err: err.message }, 'HBONE connection error'));
        resolve(session);
      });
    });
  }
}
