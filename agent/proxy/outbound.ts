// The outbound proxy: accepts the connections the datapath redirected to :15001, finds
// where each was meant to go (SO_ORIGINAL_DST, answered by the eBPF getsockopt hook, or by
// conntrack under an iptables REDIRECT), resolves a ClusterIP:port to one endpoint of the
// Service, and pipes bytes through the connector (plain TCP, HBONE, or the same-node path).
//
// A Service port that speaks HTTP (declared by appProtocol or port name, else sniffed from
// the first bytes) is handed to the L7 engine (l7/servers.ts): per-request routing,
// retries, timeouts, balancing and ejection. Opaque TCP stays here, with the L4 features of
// the destination's routes and policy (l7/tcp-route.ts: weighted TCP routes, connect
// timeout, maxConnections, ejection on connect failures).
//
// Destinations that are not a Service's ClusterIP (a pod IP, an outside address) pass
// through to the original destination unchanged, as Istio's PassthroughCluster does.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import diagnostics from 'node:diagnostics_channel';
import { logger } from '../../common/log.js';
import { NodemeshError } from '../../common/errors.js';
import type { Service, Workload } from '../../control/api/snapshot.js';
import { originalDst } from '../datapath/socket-calls.js';
import { UpstreamError, type UpstreamConnector, type UpstreamRequest } from '../transport/connector.js';
import type { ProxyState, ServiceTarget } from '../state/proxy-state.js';
import { L7Servers } from '../l7/servers.js';
import { planTcp, type TcpPlan } from '../l7/tcp-route.js';
import { declaredProtocol, sniff, SNIFF_TIMEOUT_MS } from '../transport/protocol-detect.js';
import { connectWithTimeout } from '../cluster/pools.js';
import type { ConnInfo } from '../l7/exchange.js';
import {
  onScrape,
  proxyErrors,
  tcpConnectionsClosed,
  tcpConnectionsOpened,
  tcpLabels,
  tcpReceivedBytes,
  tcpSentBytes,
  type IstioLabels,
} from '../telemetry/metrics.js';
import { ResponseFlag, type ResponseFlagValue } from '../transport/response-flags.js';

const log = logger('agent/outbound');

/** Published on open and on close of every proxied connection; `nodemesh tap` reads it. */
export const connectionChannel = diagnostics.channel('nodemesh:outbound:connection');

export interface ConnectionEvent {
  event: 'open' | 'close';
  time: string;
  source: string;
  sourceWorkload: string;
  originalDestination: string;
  service: string;
  upstream: string;
  responseFlags: string;
  receivedBytes: number;
  sentBytes: number;
  durationMs: number;
}

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
}

interface Flow {
  downstream: net.Socket;
  upstream: Duplex | undefined;
  labels: IstioLabels;
  startedAt: number;
  /** bytes already added to the counters (long-lived connections are flushed periodically) */
  countedIn: number;
  countedOut: number;
  event: Omit<ConnectionEvent, 'event' | 'time' | 'receivedBytes' | 'sentBytes' | 'durationMs'>;
  closed: boolean;
  /** the L4 plan of a connection to a Service (its cluster's limits and outlier detection) */
  plan: TcpPlan | undefined;
}

export class OutboundProxy {
  private readonly server: net.Server;
  private readonly flows = new Set<Flow>();
  private readonly flushTimer: NodeJS.Timeout;
  private readonly offScrape: () => void;
  /** the L7 engine, whose clusters opaque TCP to a Service shares */
  readonly l7: L7Servers;

  constructor(private readonly opts: OutboundProxyOptions) {
    this.l7 = new L7Servers({ connector: opts.connector, state: opts.state });
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(s));
    this.flushTimer = setInterval(() => this.flushAll(), opts.flushIntervalMs ?? 5_000);
    this.flushTimer.unref();
    this.offScrape = onScrape(() => this.flushAll());
  }

  /**
   * Listens on an explicit IPv4 address: a default `::` listener would hand over
   * v4-mapped sockets, while the original-destination lookup is keyed by IPv4.
   */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.opts.host, port: this.opts.port, ipv6Only: false, backlog: 4096 }, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => log.error({ err }, 'outbound listener error'));
        resolve();
      });
    });
  }

  get openConnections(): number {
    return this.flows.size;
  }

  /** Stops accepting; open connections are left to finish unless `force`. */
  async close(force = false): Promise<void> {
    clearInterval(this.flushTimer);
    this.offScrape();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (force) for (const f of this.flows) this.teardown(f, true);
    if (force) await this.l7.close();
    await closed;
  }

  private accept(downstream: net.Socket): void {
    downstream.on('error', () => {}); // errors are handled by the flow teardown below
    let dst: { ip: string; port: number };
    try {
      dst = originalDst(downstream);
    } catch (err) {
      // not redirected by us (someone dialled :15001 directly) or the record is gone
      proxyErrors.inc({ reason: err instanceof NodemeshError ? err.code : 'unknown' });
      log.warn({ err, client: `${downstream.remoteAddress}:${downstream.remotePort}` }, 'no original destination; closing');
      downstream.destroy();
      return;
    }
    const state = this.opts.state();
    const source = state.workloadByIp(downstream.remoteAddress ?? '');
    const target = state.serviceByVip(dst.ip, dst.port);
    const declared = target ? declaredProtocol(target.port) : 'tcp';
    if (!target || declared === 'tcp') return this.proxyTcp(downstream, dst, state, source, target);
    const conn: ConnInfo = {
      source,
      sourceKey: source?.uid ?? downstream.remoteAddress ?? '',
      sourceAddress: downstream.remoteAddress ?? '',
      sourcePort: downstream.remotePort ?? 0,
      target,
    };
    // a declared HTTP port: the client speaks first, wait for its bytes to tell HTTP/1.1 from
    // HTTP/2; an undeclared one: sniff briefly, then treat as TCP
    void sniff(downstream, declared === 'unknown' ? SNIFF_TIMEOUT_MS : 0).then((p) => {
      if (downstream.destroyed) return;
      if (p === 'tcp' && declared === 'unknown') return this.proxyTcp(downstream, dst, state, source, target);
      // not HTTP on a declared HTTP port: the HTTP/1.1 parser answers 400
      const protocol = p === 'tcp' ? 'http1' : p;
      this.tapHttp(downstream, conn, `${dst.ip}:${dst.port}`, protocol);
      this.l7.serve(downstream, conn, protocol);
    });
  }

  /** `nodemesh tap` sees HTTP connections open and close too; their requests are in istio_requests_total. */
  private tapHttp(downstream: net.Socket, conn: ConnInfo, originalDestination: string, protocol: string): void {
    if (!connectionChannel.hasSubscribers) return;
    const startedAt = performance.now();
    const event = (e: 'open' | 'close'): ConnectionEvent => ({
      event: e,
      time: new Date().toISOString(),
      source: `${conn.sourceAddress}:${conn.sourcePort}`,
      sourceWorkload: conn.source?.uid ?? 'unknown',
      originalDestination,
      service: conn.target.service.hostname,
      upstream: `per request (${protocol === 'http2' ? 'HTTP/2' : 'HTTP/1.1'})`,
      responseFlags: ResponseFlag.None,
      receivedBytes: downstream.bytesRead,
      sentBytes: downstream.bytesWritten,
      durationMs: Math.round(performance.now() - startedAt),
    });
    connectionChannel.publish(event('open'));
    downstream.once('close', () => connectionChannel.publish(event('close')));
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
    const flow: Flow = {
      downstream,
      upstream: undefined,
      labels: tcpLabels(source, service, destWorkload, `${dst.ip}:${dst.port}`, flags),
      startedAt: performance.now(),
      countedIn: 0,
      countedOut: 0,
      event: {
        source: `${downstream.remoteAddress}:${downstream.remotePort}`,
        sourceWorkload: source ? source.uid : 'unknown',
        originalDestination: `${dst.ip}:${dst.port}`,
        service: service?.hostname ?? 'passthrough',
        upstream: flags === ResponseFlag.None ? `${upstreamIp}:${upstreamPort}` : '',
        responseFlags: flags,
      },
      closed: false,
      plan,
    };
    // what the transport will prove (HBONE: mTLS and both principals), known before connecting
    const security = flags === ResponseFlag.None ? this.opts.connector.security?.({ source, sourceAddress: downstream.remoteAddress ?? '', sourcePort: downstream.remotePort ?? 0, ip: upstreamIp, port: upstreamPort, destination: destWorkload }) : undefined;
    if (security) Object.assign(flow.labels, { connection_security_policy: security.policy, source_principal: security.sourcePrincipal, destination_principal: security.destinationPrincipal });
    this.flows.add(flow);
    tcpConnectionsOpened.inc(flow.labels);
    this.publish(flow, 'open');
    if (flags !== ResponseFlag.None) {
      proxyErrors.inc({ reason: flags });
      this.teardown(flow, true);
      return;
    }
    downstream.once('close', () => {
      if (!flow.upstream) this.teardown(flow, true); // gone before the upstream connected
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

  private connectUpstream(flow: Flow, req: UpstreamRequest): void {
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
        flow.downstream.pipe(upstream);
        upstream.pipe(flow.downstream);
        // each side ends its peer through pipe() (half-close is carried); the flow is done
        // when both are fully closed
        let open = 2;
        const onClose = () => {
          if (--open === 0) this.teardown(flow, false);
        };
        upstream.once('close', onClose);
        flow.downstream.once('close', onClose);
      },
      (err: unknown) => {
        flow.plan?.failed();
        const flag = err instanceof UpstreamError ? err.flag : ResponseFlag.UpstreamConnectionFailure;
        flow.labels.response_flags = flag;
        flow.event.responseFlags = flag;
        proxyErrors.inc({ reason: flag });
        log.debug({ err, upstream: `${req.ip}:${req.port}` }, 'upstream connect failed');
        this.teardown(flow, true);
      },
    );
  }

  private teardown(flow: Flow, destroy: boolean): void {
    if (flow.closed) return;
    flow.closed = true;
    flow.plan?.closed();
    if (destroy) {
      // an error on either side resets the other, as a TCP proxy must
      if (!flow.downstream.destroyed) flow.downstream.resetAndDestroy();
      flow.upstream?.destroy();
    }
    this.flush(flow);
    tcpConnectionsClosed.inc(flow.labels);
    this.publish(flow, 'close');
    this.flows.delete(flow);
  }

  private flush(flow: Flow): void {
    const received = flow.downstream.bytesRead;
    const sent = flow.downstream.bytesWritten;
    if (received > flow.countedIn) tcpReceivedBytes.inc(flow.labels, received - flow.countedIn);
    if (sent > flow.countedOut) tcpSentBytes.inc(flow.labels, sent - flow.countedOut);
    flow.countedIn = received;
    flow.countedOut = sent;
  }

  private flushAll(): void {
    for (const f of this.flows) this.flush(f);
  }

  private publish(flow: Flow, event: 'open' | 'close'): void {
    if (!connectionChannel.hasSubscribers) return;
    const e: ConnectionEvent = {
      event,
      time: new Date().toISOString(),
      ...flow.event,
      receivedBytes: flow.downstream.bytesRead,
      sentBytes: flow.downstream.bytesWritten,
      durationMs: Math.round(performance.now() - flow.startedAt),
    };
    connectionChannel.publish(e);
  }
}
