// The node proxy's inbound capture port (15006): plaintext connections to a meshed pod of
// this node that bypassed the mesh (a pod that is not meshed, a client on the pod network,
// another node's unmeshed pod) are steered here in the kernel by bpf/inbound.bpf.c.
//
// The listener is IP_TRANSPARENT (bpf_sk_assign needs that to hand it a SYN for an address
// that is not the node's; it must not be SO_REUSEPORT), so the accepted socket carries the
// address the client dialled as its own local address: `localAddress:localPort` IS the
// original destination, no lookup needed. Each accepted connection goes to deliverInbound
// (inbound policy: PeerAuthentication, AuthorizationPolicy; destination-side telemetry)
// as plaintext (`security: 'none'`) from an unknown principal; a refusal resets it.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { logger } from '../../common/log.js';
import type { Workload } from '../../control/api/snapshot.js';
import type { InboundConnection, InboundResult } from './inbound-delivery.js';
import { proxyErrors } from '../telemetry/metrics.js';
import { closeFd, transparentListener } from '../datapath/socket-calls.js';
import { publishConnection, type ConnectionDescription } from '../telemetry/tap.js';
import { ResponseFlag } from '../transport/response-flags.js';
import { unmapIpv4 } from '../../common/ip.js';

const log = logger('agent/inbound-capture');

/** What the capture needs of the snapshot. */
export interface WorkloadLookup {
  workloadByIp(ip: string): Workload | undefined;
}

/** deliverInbound with the agent's connector and current policy bound. */
export type InboundDeliver = (stream: Duplex, c: InboundConnection) => Promise<InboundResult>;

export interface InboundCaptureOptions {
  /** the node's address (the proxy IP) */
  host: string;
  port: number;
  /** this node's name: only its meshed pods are served */
  node: string;
  index: () => WorkloadLookup;
  deliver: InboundDeliver;
}

/** What `nodemesh tap` shows of a captured connection beyond what it shows of an outbound one. */
const TAP_INBOUND = { direction: 'inbound', security: 'none' } as const;

export class InboundCapture {
  private readonly server: net.Server;
  private listenFd = -1;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly opts: InboundCaptureOptions) {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => void this.accept(s));
  }

  /** The listener's fd, for nm_inbound_listener; -1 until listen(). */
  get fd(): number {
    return this.listenFd;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** `given`: an IP_TRANSPARENT listener the agent made or took over from its predecessor (agent/lifecycle/). */
  listen(given?: number): Promise<void> {
    const fd = given ?? transparentListener(this.opts.host, this.opts.port);
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        closeFd(fd);
        reject(err);
      };
      this.server.once('error', fail);
      this.server.listen({ fd }, () => {
        this.server.off('error', fail);
        this.server.on('error', (err) => log.error({ err }, 'inbound listener error'));
        this.listenFd = fd;
        log.info({ address: `${this.opts.host}:${this.opts.port}`, fd }, 'inbound capture listening (IP_TRANSPARENT)');
        resolve();
      });
    });
  }

  /** Stops accepting (the kernel drops the socket from nm_inbound_listener on close). */
  async close(force = false): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (force) for (const s of this.sockets) s.destroy();
    this.listenFd = -1;
    await closed;
  }

  private async accept(socket: net.Socket): Promise<void> {
    socket.on('error', () => {}); // the pipe in deliverInbound, or the reset below, ends it
    const started = performance.now();
    const dstIp = unmapIpv4(socket.localAddress ?? '');
    const dstPort = socket.localPort ?? 0;
    const srcIp = unmapIpv4(socket.remoteAddress ?? '');
    const srcPort = socket.remotePort ?? 0;
    const idx = this.opts.index();
    const destination = idx.workloadByIp(dstIp);
    const event = {
      source: `${srcIp}:${srcPort}`,
      sourceWorkload: idx.workloadByIp(srcIp)?.uid ?? 'unknown',
      originalDestination: `${dstIp}:${dstPort}`,
      service: 'inbound plaintext',
      upstream: `${dstIp}:${dstPort}`,
    };
    if (!destination || destination.node !== this.opts.node || !destination.meshed) {
      // dialled 15006 directly, or the pod stopped being meshed here since the kernel chose
      proxyErrors.inc({ reason: 'inbound_not_a_meshed_pod' });
      log.warn(
        { client: event.source, destination: event.originalDestination },
        'captured connection is not for a meshed pod of this node; resetting',
      );
      this.publish('open', event, ResponseFlag.NoRoute, socket, started);
      socket.resetAndDestroy();
      this.publish('close', event, ResponseFlag.NoRoute, socket, started);
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const c: InboundConnection = {
      destination,
      port: dstPort,
      sourceIp: srcIp,
      sourcePort: srcPort,
      sourcePrincipal: undefined,
      security: 'none',
    };
    this.publish('open', event, ResponseFlag.None, socket, started);
    let result: InboundResult;
    try {
      result = await this.opts.deliver(socket, c);
    } catch (err) {
      result = { delivered: false, flag: ResponseFlag.UpstreamConnectionFailure, reason: (err as Error).message };
    }
    if (!result.delivered) {
      // STRICT, a DENY, or the pod refused: a plaintext client gets a reset
      proxyErrors.inc({ reason: result.flag });
      log.debug(
        { client: event.source, destination: event.originalDestination, flag: result.flag, reason: result.reason },
        'captured connection refused',
      );
      if (!socket.destroyed) socket.resetAndDestroy();
      this.publish('close', event, result.flag, socket, started);
      return;
    }
    socket.once('close', () => this.publish('close', event, ResponseFlag.None, socket, started));
  }

  private publish(kind: 'open' | 'close', connection: ConnectionDescription, flags: string, s: net.Socket, started: number): void {
    publishConnection(kind, connection, flags, s, started, TAP_INBOUND);
  }
}
