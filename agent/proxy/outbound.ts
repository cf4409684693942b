// The outbound proxy: accepts the connections the datapath redirected to :15001, finds
// where each was meant to go (SO_ORIGINAL_DST, answered by the eBPF getsockopt hook, or by
// conntrack under an iptables REDIRECT) and resolves a ClusterIP:port to one endpoint of the
// Service. The upstream connection is the connector's: plain TCP, an HBONE tunnel to the
// destination's node proxy, or the same-node path.
//
// A Service port that speaks HTTP (declared by appProtocol or port name, else sniffed from
// the first bytes) is handed to the L7 engine (l7/servers.ts): per-request routing,
// retries, timeouts, balancing and ejection. Opaque TCP stays here, with the L4 features of
// the destination's routes and policy (l7/tcp-route.ts: weighted TCP routes, connect
// timeout, maxConnections, ejection on connect failures).
//
// Destinations that are not a Service's ClusterIP (a pod IP, an outside address) pass
// through to the original destination unchanged, as Istio's PassthroughCluster does.
//
// Every accepted connection is this proxy's until it closes (close(true) cuts them all), is
// counted against its source pod's share (transport/source-limits.ts: past it, reset at
// once) and has a timeout in every phase (transport/timeouts.ts): the first byte of a
// declared HTTP port, then the L7 engine's head and idle timeouts; opaque TCP idle. The
// listener is half-open for opaque TCP's sake (a client's FIN is carried upstream); an HTTP
// connection ends with its client's FIN (l7/servers.ts).
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { logger } from '../../common/log.js';
import { NodemeshError } from '../../common/errors.js';
import type { Service, Workload } from '../../control/api/snapshot.js';
import { originalDst } from '../datapath/socket-calls.js';
import { connectWithTimeout, UpstreamError, type UpstreamConnector, type UpstreamRequest } from '../transport/connector.js';
import type { ProxyState, ServiceTarget } from '../state/proxy-state.js';
import { L7Servers } from '../l7/servers.js';
import { planTcp, type TcpPlan } from '../l7/tcp-route.js';
import { declaredProtocol, sniff, sniffWithin, SNIFF_TIMEOUT_MS } from '../transport/protocol-detect.js';
import { proxyTimeouts, type ProxyTimeouts } from '../transport/timeouts.js';
import { DEFAULT_SOURCE_LIMITS, SourceLimits, type SourceLimitsOptions, type SourceShare } from '../transport/source-limits.js';
import type { ConnInfo } from '../transport/connection.js';
import { proxyErrors, tcpLabels, type IstioLabels } from '../telemetry/metrics.js';
import { publishConnection, tapping, type ConnectionDescription } from '../telemetry/tap.js';
import { Flow, FlowSet } from '../transport/flow.js';
import { relay } from '../transport/relay.js';
import { ResponseFlag, type ResponseFlagValue } from '../transport/response-flags.js';
import { passthroughGuard } from './passthrough-guard.js';

const log = logger('agent/outbound');

export interface OutboundProxyOptions {
  /** IPv4 address to listen on (explicitly IPv4: see listen()) */
  host: string;
  port: number;
  /** the current proxy state; read on every new connection */
  state: () => ProxyState;
  /** how upstream connections are made (plain TCP, HBONE) */
  connector: UpstreamConnector;
  /** how often byte counters of long-lived connections are brought up to date */
  flushIntervalMs?: number;
  /** where an accepted connection was meant to go: the datapath's answer (tests without the kernel give their own) */
  originalDst?: (socket: net.Socket) => { ip: string; port: number };
  /** the phases' timeouts (transport/timeouts.ts defaults) */
  timeouts?: Partial<ProxyTimeouts>;
  /** the bound per source pod (transport/source-limits.ts defaults) */
  limits?: Partial<SourceLimitsOptions>;
  /** the node the proxy runs on (its locality is the sources', for locality load balancing) */
  node?: string;
}

/** What a client that sent no request head in time gets (as Node's HTTP server answers). */
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

/** An opaque TCP connection through the proxy: its accounting, and what the tap shows of it. */
class TcpFlow extends Flow {
  upstream: Duplex | undefined = undefined;
  /** sides not closed yet, once the upstream is connected: the flow is done at 0 */
  openSides = 2;
  readonly startedAt = performance.now();

  constructor(
    flows: FlowSet<TcpFlow>,
    labels: IstioLabels,
    readonly downstream: net.Socket,
    readonly tap: ConnectionDescription,
    /** the L4 plan of a connection to a Service (its cluster's limits and outlier detection) */
    readonly plan: TcpPlan | undefined,
  ) {
    super(flows, labels, downstream, 'client');
  }
}

export class OutboundProxy {
  private readonly server: net.Server;
  private readonly flows: FlowSet<TcpFlow>;
  /** the L7 engine, whose clusters opaque TCP to a Service shares */
  readonly l7: L7Servers;
  /** every accepted connection until it closes */
  private readonly sockets = new Set<net.Socket>();
  readonly limits: SourceLimits;
  private readonly timeouts: ProxyTimeouts;

  constructor(private readonly opts: OutboundProxyOptions) {
    this.timeouts = proxyTimeouts(opts.timeouts);
    this.limits = new SourceLimits({ ...DEFAULT_SOURCE_LIMITS, ...opts.limits });
    this.l7 = new L7Servers({ connector: opts.connector, state: opts.state, timeouts: this.timeouts, ...(opts.node ? { node: opts.node } : {}) });
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(s));
    this.flows = new FlowSet<TcpFlow>(opts.flushIntervalMs);
  }

  /**
   * Listens on an explicit IPv4 address: a default `::` listener would hand over
   * v4-mapped sockets, while the original-destination lookup is keyed by IPv4. `fd`: a
   * listening socket the agent made or took over from its predecessor (agent/lifecycle/).
   */
  listen(fd?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(fd !== undefined ? { fd, backlog: 4096 } : { host: this.opts.host, port: this.opts.port, ipv6Only: false, backlog: 4096 }, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => log.error({ err }, 'outbound listener error'));
        resolve();
      });
    });
  }

  get address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /** Accepted connections open now, whatever they carry. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Opaque TCP connections open now. */
  get openTcpConnections(): number {
    return this.flows.size;
  }

  /** Downstream connections open now, opaque TCP and HTTP alike (what a drain waits for). */
  downstreamConnections(): Promise<number> {
    return new Promise((resolve) => this.server.getConnections((err, n) => resolve(err ? 0 : n)));
  }

  /** Stops accepting; open connections are left to finish unless `force`. */
  async close(force = false): Promise<void> {
    this.flows.close();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (force) {
      for (const f of this.flows) this.teardown(f, true);
      await this.l7.close();
      for (const s of this.sockets) s.destroy();
    }
    await closed;
  }

  private accept(downstream: net.Socket): void {
    downstream.on('error', () => {}); // errors are handled by the flow teardown below
    let dst: { ip: string; port: number };
    try {
      dst = (this.opts.originalDst ?? originalDst)(downstream);
    } catch (err) {
      // not redirected by us (someone dialled :15001 directly) or the record is gone
      proxyErrors.inc({ reason: err instanceof NodemeshError ? err.code : 'unknown' });
      log.warn({ err, client: `${downstream.remoteAddress}:${downstream.remotePort}` }, 'no original destination; closing');
      downstream.destroy();
      return;
    }
    const state = this.opts.state();
    if (passthroughGuard.refuses(downstream, dst, state)) return; // never to the mesh's own ports (passthrough-guard.ts)
    const source = state.workloadByIp(downstream.remoteAddress ?? '');
    const sourceKey = source?.uid ?? downstream.remoteAddress ?? '';
    // a pod past its share is refused before anything else is spent on it (counted)
    const share = this.limits.acquireConnection(sourceKey);
    if (!share) {
      downstream.resetAndDestroy();
      return;
    }
    this.own(downstream, share);
    // a Service not exported to the source's namespace is, for that pod, no Service at all
    // (Istio's exportTo: its sidecar would hold no listener for it): an unknown destination
    const vip = state.serviceByVip(dst.ip, dst.port);
    const target = vip && state.visibleTo(vip.service, source?.namespace) ? vip : undefined;
    const declared = target ? declaredProtocol(target.port) : 'tcp';
    if (!target || declared === 'tcp') return this.proxyTcp(downstream, dst, state, source, target);
    const conn: ConnInfo = {
      source,
      sourceKey,
      sourceAddress: downstream.remoteAddress ?? '',
      sourcePort: downstream.remotePort ?? 0,
      target,
      share,
    };
    if (declared === 'unknown') {
      // an undeclared port: sniff briefly, then treat as TCP (also a client that half-closed
      // without a byte: a server-first protocol may still answer it)
      void sniff(downstream, SNIFF_TIMEOUT_MS).then((p) => {
        if (downstream.destroyed) return;
        if (p === 'tcp' || p === undefined) return this.proxyTcp(downstream, dst, state, source, target);
        this.serveHttp(downstream, conn, `${dst.ip}:${dst.port}`, p);
      });
      return;
    }
    // a declared HTTP port: the client speaks first, its bytes tell HTTP/1.1 from HTTP/2; it
    // has the request head's timeout to send them
    void sniffWithin(downstream, this.timeouts.requestHeadersMs).then((p) => {
      if (downstream.destroyed) return;
      if (p === undefined) return void downstream.destroy(); // closed before its first byte: nothing to serve
      if (p === 'timeout') return void downstream.end(REQUEST_TIMEOUT, () => downstream.destroy());
      // not HTTP on a declared HTTP port: the HTTP/1.1 parser answers 400
      this.serveHttp(downstream, conn, `${dst.ip}:${dst.port}`, p === 'tcp' ? 'http1' : p);
    });
  }

  /** The connection is the proxy's until it closes, and counts against its source's share. */
  private own(downstream: net.Socket, share: SourceShare): void {
    this.sockets.add(downstream);
    downstream.once('close', () => {
      this.sockets.delete(downstream);
      this.limits.releaseConnection(share);
    });
  }

  private serveHttp(downstream: net.Socket, conn: ConnInfo, originalDestination: string, protocol: 'http1' | 'http2'): void {
    this.tapHttp(downstream, conn, originalDestination, protocol);
    this.l7.serve(downstream, conn, protocol);
  }

  /** `nodemesh tap` sees HTTP connections open and close too; their requests are in istio_requests_total. */
  private tapHttp(downstream: net.Socket, conn: ConnInfo, originalDestination: string, protocol: string): void {
    if (!tapping()) return;
    const startedAt = performance.now();
    const tap: ConnectionDescription = {
      source: `${conn.sourceAddress}:${conn.sourcePort}`,
      sourceWorkload: conn.source?.uid ?? 'unknown',
      originalDestination,
      service: conn.target.service.hostname,
      upstream: `per request (${protocol === 'http2' ? 'HTTP/2' : 'HTTP/1.1'})`,
    };
    publishConnection('open', tap, ResponseFlag.None, downstream, startedAt);
    downstream.once('close', () => publishConnection('close', tap, ResponseFlag.None, downstream, startedAt));
  }

  private proxyTcp(
    downstream: net.Socket,
    dst: { ip: string; port: number },
    state: ProxyState,
    source: Workload | undefined,
    target: ServiceTarget | undefined,
  ): void {
    let service: Service | undefined;
    let upstreamIp = dst.ip;
    let upstreamPort = dst.port;
    let flags: ResponseFlagValue = ResponseFlag.None;
    let plan: TcpPlan | undefined;
    if (target) {
      plan = planTcp(this.l7, state, {
        source,
        sourceKey: source?.uid ?? downstream.remoteAddress ?? '',
        sourceAddress: downstream.remoteAddress ?? '',
        sourcePort: downstream.remotePort ?? 0,
        target,
      });
      service = plan.service ?? target.service;
      if (plan.flag === ResponseFlag.None) {
        upstreamIp = plan.ip;
        upstreamPort = plan.port;
      } else {
        flags = plan.flag;
      }
    } else if (dst.ip === this.opts.host && dst.port === this.opts.port) {
      flags = ResponseFlag.NoRoute; // would loop into ourselves
    }
    const destWorkload = plan?.destination ?? state.workloadByIp(upstreamIp);
    const labels = tcpLabels(source, service, destWorkload, `${dst.ip}:${dst.port}`, flags);
    // what the transport will prove (HBONE: mTLS and both principals), known before connecting
    const security = flags === ResponseFlag.None ? this.opts.connector.security?.({ source, sourceAddress: downstream.remoteAddress ?? '', sourcePort: downstream.remotePort ?? 0, ip: upstreamIp, port: upstreamPort, destination: destWorkload }) : undefined;
    if (security) Object.assign(labels, { connection_security_policy: security.policy, source_principal: security.sourcePrincipal, destination_principal: security.destinationPrincipal });
    const flow = new TcpFlow(
      this.flows,
      labels,
      downstream,
      {
        source: `${downstream.remoteAddress}:${downstream.remotePort}`,
        sourceWorkload: source ? source.uid : 'unknown',
        originalDestination: `${dst.ip}:${dst.port}`,
        service: service?.hostname ?? 'passthrough',
        upstream: flags === ResponseFlag.None ? `${upstreamIp}:${upstreamPort}` : '',
      },
      plan,
    );
    flow.logAs = { subject: source, upstreamHost: flow.tap.upstream, downstreamRemote: flow.tap.source };
    flow.open();
    this.publish(flow, 'open');
    if (flags !== ResponseFlag.None) {
      proxyErrors.inc({ reason: flags });
      this.teardown(flow, true);
      return;
    }
    downstream.once('close', () => {
      if (!flow.upstream) this.teardown(flow, true); // gone before the upstream connected
      else this.sideClosed(flow);
    });
    this.connectUpstream(flow, {
      source,
      sourceAddress: downstream.remoteAddress ?? '',
      sourcePort: downstream.remotePort ?? 0,
      ip: upstreamIp,
      port: upstreamPort,
      destination: destWorkload,
    });
  }

  private connectUpstream(flow: TcpFlow, req: UpstreamRequest): void {
    connectWithTimeout(this.opts.connector, req, flow.plan?.connectTimeoutMs ?? 0).then(
      (upstream) => {
        flow.upstream = upstream;
        flow.plan?.connected();
        if (flow.closed) {
          upstream.destroy(); // the client went away while we connected
          return;
        }
        upstream.on('error', () => this.teardown(flow, true));
        flow.downstream.on('error', () => this.teardown(flow, true));
        relay(flow.downstream, upstream);
        // each side ends its peer through the relay (half-close is carried); the flow is done
        // when both are fully closed (the downstream's close listener is proxyTcp's)
        upstream.once('close', () => this.sideClosed(flow));
        // no byte either way for the idle timeout: both sides are closed (the downstream
        // socket's timer sees both directions: what it reads goes up, what it writes came down)
        flow.downstream.setTimeout(flow.plan?.idleTimeoutMs || this.timeouts.tcpIdleMs);
        flow.downstream.once('timeout', () => {
          log.debug({ source: flow.tap.source, upstream: flow.tap.upstream }, 'TCP connection idle: closing');
          flow.downstream.destroy();
          upstream.destroy();
        });
      },
      (err: unknown) => {
        flow.plan?.failed();
        const flag = err instanceof UpstreamError ? err.flag : ResponseFlag.UpstreamConnectionFailure;
        proxyErrors.inc({ reason: flag });
        log.debug({ err, upstream: `${req.ip}:${req.port}` }, 'upstream connect failed');
        this.teardown(flow, true, flag);
      },
    );
  }

  private sideClosed(flow: TcpFlow): void {
    if (--flow.openSides === 0) this.teardown(flow, false);
  }

  private teardown(flow: TcpFlow, destroy: boolean, flag?: ResponseFlagValue): void {
    if (flow.closed) return;
    flow.plan?.closed();
    if (destroy) {
      // an error on either side resets the other, as a TCP proxy must
      if (!flow.downstream.destroyed) flow.downstream.resetAndDestroy();
      flow.upstream?.destroy();
    }
    flow.close(flag);
    this.publish(flow, 'close');
  }

  private publish(flow: TcpFlow, event: 'open' | 'close'): void {
    publishConnection(event, flow.tap, flow.labels.response_flags, flow.downstream, flow.startedAt);
  }
}
