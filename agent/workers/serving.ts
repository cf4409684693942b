// What serves traffic: the outbound proxy (15001, with the L7 engine), the HBONE server
// (15008) and the inbound capture listener (15006), built over the listening descriptors
// the agent holds. The agent runs them in its own process (`--workers 1`) or each worker
// process runs one set over the same descriptors (worker-pool.ts, worker-main.ts; a worker
// gets its HBONE connections from the primary instead); either way the agent sees the
// `Serving` interface below and nothing else of them.
import type { Socket } from 'node:net';
import { AGENT_PORTS as PORTS, PROXY_MARK } from '../../common/ports.js';
import type { IdentityProvider } from '../identity/identity.js';
import { closeDescriptor } from '../datapath/socket-handoff.js';
import { HboneConnector } from '../hbone/client.js';
import { gatewayRoute } from '../hbone/gateway-route.js';
import { HboneInbound, provenSourceWorkload } from '../hbone/server.js';
import { InboundCapture, type InboundDeliver } from '../proxy/inbound-capture.js';
import { clientAddress, deliverInbound } from '../proxy/inbound-delivery.js';
import { MeshConnector } from '../proxy/mesh-connector.js';
import { OutboundProxy } from '../proxy/outbound.js';
import { setClusterStats } from '../telemetry/mesh-metrics.js';
import type { ProxyState } from '../state/proxy-state.js';
import { TcpConnector } from '../transport/connector.js';
import { proxyTimeouts, type ProxyTimeouts } from '../transport/timeouts.js';
import type { SourceLimitsOptions } from '../transport/source-limits.js';

/** What the serving parts need besides the state and the identities (plain data: it crosses to worker processes). */
export interface ServingConfig {
  node: string;
  proxyIp: string;
  outboundPort: number;
  /** the proxy's timeouts and bound per source pod (defaults: transport/timeouts.ts, transport/source-limits.ts) */
  timeouts?: Partial<ProxyTimeouts>;
  limits?: Partial<SourceLimitsOptions>;
  /** deliver to pods from the client's address (default true; false: the node's, as before issue 10) */
  transparentDelivery?: boolean;
}

/** The listening descriptors to serve on (hbone only with identities). */
export interface ServingDescriptors {
  outbound: number;
  inbound: number;
  hbone?: number;
}

/** Serving traffic, in this process or in workers: what the agent starts, asks and stops. */
export interface Serving {
  /** every listener accepts (readiness) */
  readonly listening: { outbound: boolean; inbound: boolean; hbone: boolean };
  /** Stops accepting at once (our descriptors closed); open connections go on. */
  stopAccepting(): void;
  /** Connections open now, on every listener (the drain counts them). */
  openConnections(): Promise<number>;
  /** Cuts what is left and frees everything. */
  close(): Promise<void>;
  debug(): Promise<Record<string, unknown>>;
}

/** The serving parts in this process. */
export class ProxyServing implements Serving {
  private proxy: OutboundProxy | undefined;
  private hbone: HboneConnector | undefined;
  private hboneServer: HboneInbound | undefined;
  private capture: InboundCapture | undefined;
  /** descriptors given to start() that no server listens on yet: a failed start closes them */
  private readonly unclaimed = new Set<number>();
  private hboneHanded = false;

  private constructor() {}

  /**
   * Builds and starts them over `fds`. `identity` undefined: no HBONE (meshed destinations
   * in plaintext). A failed start frees what it started and rethrows.
   */
  static async start(
    config: ServingConfig,
    fds: ServingDescriptors,
    state: () => ProxyState,
    identity: IdentityProvider | undefined,
    /** a worker: HBONE connections come one by one from the primary (acceptHbone), not from a listener */
    hboneHanded = false,
  ): Promise<ProxyServing> {
    const s = new ProxyServing();
    s.hboneHanded = hboneHanded && identity !== undefined;
    try {
      await s.build(config, fds, state, identity);
    } catch (err) {
      await s.close();
      throw err;
    }
    return s;
  }

  private async build(config: ServingConfig, fds: ServingDescriptors, state: () => ProxyState, identity: IdentityProvider | undefined): Promise<void> {
    for (const fd of Object.values(fds)) if (fd !== undefined) this.unclaimed.add(fd);
    // to this node's meshed pods, from the client's own address: the inbound datapath
    // brings the pods' answers back to these sockets (ARCHITECTURE.md, issue 10)
    const podConnector = new TcpConnector(PROXY_MARK, undefined, config.transparentDelivery ?? true);
    const timeouts = proxyTimeouts(config.timeouts);
    const deliverTunnel: InboundDeliver = (sock, c) => {
      const st = state();
      const proven = provenSourceWorkload(c, st);
      const from = clientAddress(c, proven);
      return deliverInbound(sock, c, podConnector, {
        security: st.snapshot ? st.security : undefined,
        sourceWorkload: proven,
        service: st.serviceFor(c.destination.uid, c.port),
        timeouts,
        ...(from !== undefined ? { transparentSource: from } : {}),
      });
    };
    // with identities, meshed destinations are reached over HBONE (or the same-node path)
    const tcp = new TcpConnector(PROXY_MARK);
    // a destination in another network is reached through that network's east-west gateway
    if (identity) this.hbone = new HboneConnector({ identity, nodeIp: (w) => state().nodeIp(w.node), mark: PROXY_MARK, via: (w) => gatewayRoute(state(), config.node, w), trustDomains: () => state().snapshot?.trustDomains ?? [] });
    const outbound = new OutboundProxy({
      host: config.proxyIp,
      port: config.outboundPort,
      state,
      connector: this.hbone ? new MeshConnector({ node: config.node, hbone: this.hbone, tcp, local: deliverTunnel }) : tcp,
      timeouts,
      node: config.node,
      ...(config.limits ? { limits: config.limits } : {}),
    });
    this.proxy = outbound;
    // this process's clusters for the scrape (summed over workers by the primary's /metrics)
    setClusterStats(() => outbound.l7.clusters.stats());
    this.unclaimed.delete(fds.outbound); // the server's now, listening or not (it closes it)
    await outbound.listen(fds.outbound);
    if (identity && (fds.hbone !== undefined || this.hboneHanded)) {
      this.hboneServer = new HboneInbound({ host: config.proxyIp, port: PORTS.hbone, node: config.node, identity, state, deliver: deliverTunnel, idleTimeoutMs: timeouts.httpIdleMs, keepalive: timeouts });
      if (fds.hbone !== undefined) {
        this.unclaimed.delete(fds.hbone);
        await this.hboneServer.listen(fds.hbone);
      }
    }
    this.capture = new InboundCapture({
      host: config.proxyIp,
      port: PORTS.inbound,
      node: config.node,
      index: state,
      deliver: (sock, c) => {
        const st = state();
        const from = clientAddress(c, undefined);
        return deliverInbound(sock, c, podConnector, {
          security: st.snapshot ? st.security : undefined,
          sourceWorkload: st.workloadByIp(c.sourceIp), // plaintext: by address, unproven
          service: st.serviceFor(c.destination.uid, c.port),
          timeouts,
          ...(from !== undefined ? { transparentSource: from } : {}),
        });
      },
    });
    this.unclaimed.delete(fds.inbound);
    await this.capture.listen(fds.inbound);
  }

  get listening(): Serving['listening'] {
    const hbone = this.hboneServer !== undefined && (this.hboneHanded || this.hboneServer.listening);
    return { outbound: this.proxy !== undefined, inbound: this.capture?.listening ?? false, hbone };
  }

  /** An HBONE connection the primary accepted (a worker's); without HBONE here it is closed. */
  acceptHbone(socket: Socket): void {
    if (this.hboneServer) this.hboneServer.accept(socket);
    else socket.destroy();
  }

  /**
   * Each close stops its listener at once (closing our descriptor: another holder's keeps
   * the socket open); its promise only resolves once its connections are gone, which the
   * drain watches by counting them.
   */
  stopAccepting(): void {
    void this.proxy?.close(false);
    void this.hboneServer?.close(true);
    void this.capture?.close(false);
  }

  async openConnections(): Promise<number> {
    return (await (this.proxy?.downstreamConnections() ?? Promise.resolve(0))) + (this.capture?.openConnections ?? 0) + (this.hboneServer?.connections ?? 0);
  }

  async close(): Promise<void> {
    for (const fd of this.unclaimed) closeDescriptor(fd);
    this.unclaimed.clear();
    setClusterStats(undefined);
    await this.proxy?.close(true);
    await this.hboneServer?.close();
    this.hbone?.close();
    await this.capture?.close(true);
  }

  async debug(): Promise<Record<string, unknown>> {
    return {
      openConnections: this.proxy?.openConnections ?? 0,
      traffic: this.proxy?.l7.debug() ?? {},
      hbone: { outbound: this.hbone?.pool.stats(), inboundConnections: this.hboneServer?.connections ?? 0, inbound: this.hboneServer?.sessionsInfo() ?? [] },
    };
  }
}
