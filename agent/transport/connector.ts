// How the node proxy reaches an upstream: the seam between choosing a destination (the
// outbound proxy, and the L7 router) and carrying bytes to it (plain TCP to a pod, or an
// HBONE tunnel to the node proxy of a meshed pod on another node). Whatever the transport,
// the caller gets a connected Duplex or an UpstreamError with the Envoy response flag that
// explains why not.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { proxyErrors } from '../telemetry/metrics.js';
import type { Workload } from '../../control/api/snapshot.js';
import { markedSocket, transparentSocket } from '../datapath/socket-calls.js';
import { ResponseFlag, type ResponseFlagValue } from './response-flags.js';

const log = logger('agent/connector');

export interface UpstreamRequest {
  /** the meshed pod that opened the connection (its identity, with mTLS) */
  source: Workload | undefined;
  /** the downstream peer as the proxy saw it */
  sourceAddress: string;
  sourcePort: number;
  /** the chosen endpoint, or the original destination for passthrough */
  ip: string;
  port: number;
  /** the workload that owns ip, if it is a pod the control plane knows */
  destination: Workload | undefined;
  /** W3C trace context of the request, when there is one (L7) */
  traceparent?: string;
  /**
   * Connect from this address rather than the node's (IP_TRANSPARENT): the client's own
   * pod IP, so the pod sees its real client. Set only by inbound delivery, for an address
   * it can vouch for (inbound-delivery.ts, clientAddress()); a connector without
   * transparency ignores it.
   */
  transparentSource?: string;
}

/** What a transport proves about a connection, for the source reporter's Istio labels. */
export interface UpstreamSecurity {
  /** Istio's connection_security_policy */
  policy: 'mutual_tls' | 'none';
  sourcePrincipal: string;
  destinationPrincipal: string;
}

export interface UpstreamConnector {
  /** Resolves with a connected stream; rejects with an UpstreamError. */
  connect(req: UpstreamRequest): Promise<Duplex>;
  /**
   * How `connect(req)` would carry the connection (mTLS with these principals, or plain),
   * known before connecting so that a connection's opened and closed metrics carry the
   * same labels. Undefined: plaintext, principals unknown.
   */
  security?(req: UpstreamRequest): UpstreamSecurity | undefined;
}

export class UpstreamError extends NodemeshError {
  readonly flag: ResponseFlagValue;
  constructor(flag: ResponseFlagValue, message: string, options?: { cause?: unknown }) {
    super('NM_ERR_UPSTREAM', message, options);
    this.name = 'UpstreamError';
    this.flag = flag;
  }
}

/**
 * A TCP connection from the node proxy to ip:port, marked (before connect) so the datapath
 * never redirects it. Rejects with an UpstreamError `UF` whose message is
 * `connect to <where>: <cause><hint>`. The one dial every transport starts with.
 */
export function dialTcp(
  ip: string,
  port: number,
  opts: { mark?: number; timeoutMs: number; where?: string; hint?: string; allowHalfOpen?: boolean; localAddress?: string },
): Promise<net.Socket> {
  const where = opts.where ?? `${ip}:${port}`;
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    try {
      const family = ip.includes(':') ? 6 : 4;
      const allowHalfOpen = opts.allowHalfOpen ?? false;
      socket =
        opts.mark === undefined
          ? new net.Socket({ allowHalfOpen })
          : opts.localAddress !== undefined
            ? transparentSocket(opts.mark, { allowHalfOpen })
            : markedSocket(opts.mark, family, { allowHalfOpen });
    } catch (err) {
      reject(new UpstreamError(ResponseFlag.UpstreamConnectionFailure, `socket for ${where}: ${(err as Error).message}`, { cause: err }));
      return;
    }
    const fail = (err: Error) => {
      socket.destroy();
      reject(
        new UpstreamError(ResponseFlag.UpstreamConnectionFailure, `connect to ${where}: ${err.message}${opts.hint ?? ''}`, { cause: err }),
      );
    };
    socket.setNoDelay(true);
    socket.setTimeout(opts.timeoutMs);
    socket.once('timeout', () => fail(new Error(`timed out after ${opts.timeoutMs} ms`)));
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.removeAllListeners('timeout');
      socket.off('error', fail);
      resolve(socket);
    });
    // with localAddress, Node binds the socket to it before connecting (transparent: any address)
    socket.connect({ host: ip, port, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) });
  });
}

/**
 * Plain TCP from the node proxy, marked so the datapath never redirects it (no mark: an
 * ordinary socket, for tests without CAP_NET_ADMIN). `transparent`: a request's
 * `transparentSource` is the connection's source address (needs the mark: the agent runs
 * with CAP_NET_ADMIN); the pod's answers reach the socket through the inbound datapath,
 * which is why only the connector to this node's own meshed pods is made transparent.
 */
export class TcpConnector implements UpstreamConnector {
  constructor(
    private readonly mark: number | undefined,
    private readonly connectTimeoutMs = 10_000,
    private readonly transparent = false,
  ) {}

  async connect(req: UpstreamRequest): Promise<Duplex> {
    const from = this.transparent && this.mark !== undefined ? req.transparentSource : undefined;
    const dial = (localAddress: string | undefined) =>
      dialTcp(req.ip, req.port, {
        ...(this.mark === undefined ? {} : { mark: this.mark }),
        ...(localAddress !== undefined ? { localAddress, where: `${req.ip}:${req.port} from ${localAddress}` } : {}),
        timeoutMs: this.connectTimeoutMs,
        allowHalfOpen: true,
      });
    if (from === undefined) return dial(undefined);
    try {
      return await dial(from);
    } catch (err) {
      // the client's address could not be bound (no port left for it, the option refused):
      // the connection still goes through, from the node's address, as before issue 10
      if ((err as { cause?: { syscall?: unknown } }).cause?.syscall !== 'bind') throw err;
      proxyErrors.inc({ reason: 'transparent_bind_failed' });
      log.debug({ err, from, to: `${req.ip}:${req.port}` }, 'transparent bind failed: delivering from the node address');
      return dial(undefined);
    }
  }
}

/** Connects through the connector within `timeoutMs`; a late connection is closed. */
export function connectWithTimeout(connector: UpstreamConnector, d: UpstreamRequest, timeoutMs: number): Promise<Duplex> {
  const p = connector.connect(d);
  if (!(timeoutMs > 0)) return p;
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      p.then(
        (s) => s.destroy(),
        () => {},
      );
      reject(new UpstreamError(ResponseFlag.UpstreamConnectionFailure, `connect to ${d.ip}:${d.port}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    p.then(
      (s) => {
        clearTimeout(timer);
        if (done) s.destroy();
        else resolve(s);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!done) reject(err);
      },
    );
  });
}
