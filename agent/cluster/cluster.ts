// A destination cluster, as Envoy has one per (Service port, subset): its endpoints, the
// traffic policy that applies to them (DestinationRule, or the mesh defaults), and the state
// that must outlive a snapshot — balancer cursor and latency estimates, outlier detection,
// retry budget, admission counters and pooled connections. The cluster set (cluster-set.ts)
// keeps clusters by name across snapshots, so a config push never resets ejections or drops
// pooled connections of endpoints that stay.
import type { Duplex } from 'node:stream';
import type { Endpoint, Service, ServicePort, Workload } from '../../control/api/snapshot.js';
import type { TrafficPolicy } from '../../control/api/snapshot-routing.js';
import type { Clock, ClockTimer } from '../../common/clock.js';
import { logger } from '../../common/log.js';
import { balancerName, newBalancer, type Balancer, type LbHost, type PickContext } from './load-balancer/load-balancer.js';
import './load-balancer/strategies.js';
import { EWMA_DEFAULT_RTT_MS, observeRtt } from './load-balancer/peak-ewma.js';
import { groupLoads, localityPlan, type LocalityPlan } from './locality.js';
import { OutlierDetector, type LocalOrigin, type OutlierEvent } from './outlier-detection.js';
import { RetryBudget } from './retry-budget.js';
import { Admission } from './admission.js';
import { Http1Pool, Http2Pool, type PoolOptions } from './pools.js';
import type { UpstreamConnector, UpstreamRequest } from '../transport/connector.js';
import type { Downstream } from '../transport/connection.js';
import { SourceCounter } from './per-workload-fairness.js';
import type { LabelSet } from '../telemetry/request-telemetry.js';
import { outlierEjections, retryOverflow, type ClusterStats } from '../telemetry/mesh-metrics.js';
import type { ProxyState } from '../state/proxy-state.js';

const log = logger('agent/cluster');


/** How a connection from `from` to `host` is dialled (the connector needs both workloads). */
export function dialInfo(from: Downstream, host: Host): UpstreamRequest {
  return {
    source: from.source,
    sourceAddress: from.sourceAddress,
    sourcePort: from.sourcePort,
    ip: host.endpoint.ip,
    port: host.endpoint.port,
    destination: host.workload,
  };
}

/** Istio's HostSelectionRetryMaxAttempts with the previous_hosts retry predicate. */
const HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5;

export class Host implements LbHost {
  readonly key: string;
  active = 0;
  rttEstimate = EWMA_DEFAULT_RTT_MS;
  rttUpdatedAt: number;
  /** Istio label sets of requests to this endpoint, per source (cluster-set.ts requestLabels) */
  readonly labels = new Map<string, { http?: LabelSet; grpc?: LabelSet }>();
  /** pools per source pod (pools.ts) */
  readonly http1 = new Map<string, Http1Pool>();
  readonly http2 = new Map<string, Http2Pool>();

  constructor(
    public endpoint: Endpoint,
    public workload: Workload | undefined,
    now: number,
  ) {
    this.key = `${endpoint.ip}:${endpoint.port}`;
    this.rttUpdatedAt = now;
  }

  closePools(): void {
    for (const p of this.http1.values()) p.close();
    for (const p of this.http2.values()) p.close();
    this.http1.clear();
    this.http2.clear();
  }
}

/** Where a (host, subset, port) leads in one state: the Service port and its endpoints in that subset. */
export interface ClusterSpec {
  service: Service;
  servicePort: ServicePort;
  endpoints: Endpoint[];
  policy: TrafficPolicy;
  /** the proxy's own locality, if known (locality load balancing, locality.ts) */
  locality?: string;
}

/** A locality group as the cluster balances over it: its healthy hosts, its share of requests. */
interface Tier {
  hosts: Host[];
  usable: Host[];
  /** upper end of its share in [0, 1): a request whose draw is below it (and above the previous) goes here */
  upTo: number;
  weight: number;
  balancer: Balancer;
}

export class Cluster {
  /** Envoy-style name: outbound|port|subset|host */
  readonly name: string;
  generation = -1;
  service!: Service;
  servicePort!: ServicePort;
  policy!: TrafficPolicy;
  hosts: Host[] = [];
  /** the hosts balancing may use now: healthy ones, or all in panic mode (a stable array) */
  usable: Host[] = [];
  balancer!: Balancer;
  /** locality groups (locality.ts); undefined when locality load balancing does not apply */
  private plan: LocalityPlan<Host> | undefined;
  /** the plan's groups with traffic now, in order; empty when balancing over `usable` alone */
  private tiers: Tier[] = [];
  private tierBalancers: Balancer[] = [];
  private balancerName = '';
  private tierBalancerName = '';
  readonly outlier: OutlierDetector;
  budget!: RetryBudget;
  private budgetKey = '';
  readonly admission: Admission;
  /** L4 connections by source (maxConnections for opaque TCP) */
  readonly tcpConnections = new SourceCounter();
  private sweepTimer: ClockTimer | undefined;
  private sweepEvery = 0;
  lastUsed = 0;

  constructor(
    readonly host: string,
    readonly subset: string,
    readonly port: number,
    state: ProxyState,
    spec: ClusterSpec,
    private readonly clock: Clock,
    private readonly connector: UpstreamConnector,
    /** a pool for (source, endpoint) opened a connection */
    private readonly onConnection?: (d: Duplex, dial: UpstreamRequest, cluster: Cluster) => void,
  ) {
    this.name = `outbound|${port}|${subset}|${host}`;
    this.outlier = new OutlierDetector(
      spec.policy.outlierDetection,
      () => this.refreshUsable(),
      (e) => this.onOutlierEvent(e),
    );
    this.admission = new Admission(spec.policy.connectionPool);
    this.update(state, spec);
  }

  /** Applies a newer state's view of this cluster (endpoints, policy). */
  update(state: ProxyState, spec: ClusterSpec): void {
    this.generation = state.generation;
    this.service = spec.service;
    this.servicePort = spec.servicePort;
    this.policy = spec.policy;
    const name = balancerName(spec.policy.loadBalancer);
    if (name !== this.balancerName) {
      this.balancer = newBalancer(spec.policy.loadBalancer);
      this.balancerName = name;
    }
    const rb = spec.policy.retryBudget;
    const budgetKey = `${rb.percent}/${rb.minRetriesPerSecond}/${rb.ttlMs}`;
    if (budgetKey !== this.budgetKey) {
      this.budget = new RetryBudget(rb, () => this.clock.monotonic());
      this.budgetKey = budgetKey;
    }
    this.admission.configure(spec.policy.connectionPool);
    this.outlier.configure(spec.policy.outlierDetection);

    const old = new Map(this.hosts.map((h) => [h.key, h]));
    const now = this.clock.monotonic();
    const hosts: Host[] = [];
    for (const ep of spec.endpoints) {
      const key = `${ep.ip}:${ep.port}`;
      const w = state.workloadByUid(ep.workload);
      let h = old.get(key);
      if (h) {
        old.delete(key);
        h.endpoint = ep;
        h.workload = w;
        h.labels.clear(); // labels of source or destination may have changed
      } else {
        h = new Host(ep, w, now);
      }
      hosts.push(h);
    }
    for (const gone of old.values()) gone.closePools(); // in-flight requests finish on their sockets
    this.hosts = hosts;
    this.outlier.setHosts(hosts.map((h) => h.key));
    this.plan = localityPlan(hosts, spec.policy.loadBalancer.locality, spec.locality, this.outlier.enabled);
    // a balancer per group: round robin's cursor and the hash ring belong to one host list
    const groups = this.plan?.groups.length ?? 0;
    if (this.tierBalancers.length !== groups || name !== this.tierBalancerName) {
      this.tierBalancers = Array.from({ length: groups }, () => newBalancer(spec.policy.loadBalancer));
      this.tierBalancerName = name;
    }
    this.refreshUsable();
    this.armSweep();
  }

  private armSweep(): void {
    const every = this.outlier.enabled ? this.outlier.intervalMs : 0;
    if (every === this.sweepEvery) return;
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
    this.sweepEvery = every;
    if (every > 0) this.sweepTimer = this.clock.setInterval(() => this.outlier.sweep(this.clock.monotonic()), every);
  }

  private refreshUsable(): void {
    this.tiers = [];
    const panic = this.outlier.panic();
    if (this.outlier.ejected === 0 || panic) this.usable = this.hosts;
    else this.usable = this.hosts.filter((h) => !this.outlier.isEjected(h.key));
    if (!this.plan || panic) return;
    const groups = this.plan.groups.map((g) => ({
      hosts: g.hosts,
      usable: this.outlier.ejected === 0 ? g.hosts : g.hosts.filter((h) => !this.outlier.isEjected(h.key)),
      weight: g.weight,
    }));
    const loads = groupLoads(
      this.plan.mode,
      groups.map((g) => ({ total: g.hosts.length, healthy: g.usable.length, weight: g.weight })),
    );
    let upTo = 0;
    const tiers: Tier[] = [];
    groups.forEach((g, i) => {
      if (loads[i]! <= 0) return;
      upTo += loads[i]!;
      tiers.push({ ...g, upTo, balancer: this.tierBalancers[i]! });
    });
    if (tiers.length === 0) return; // nothing healthy anywhere: the panic of the whole cluster
    tiers[tiers.length - 1]!.upTo = 1; // rounding must not leave a gap at the top
    this.tiers = tiers;
    this.usable = tiers.flatMap((t) => t.usable);
  }

  private onOutlierEvent(e: OutlierEvent): void {
    if (e.action === 'eject') outlierEjections.inc({ cluster_name: this.name, reason: e.reason ?? 'unknown' });
    log.info({ cluster: this.name, ...e }, `outlier detection: ${e.action} ${e.host}`);
  }

  /**
   * An endpoint for the next try. `tried` (retries): Envoy's previous_hosts predicate — a
   * retry prefers an endpoint not tried yet, re-picking a few times before giving in.
   */
  pick(ctx: PickContext, tried: readonly Host[] | undefined): Host | undefined {
    let hosts = this.usable;
    let balancer = this.balancer;
    if (this.tiers.length > 0) {
      const tier = this.tierFor(ctx.random());
      hosts = tier.usable;
      balancer = tier.balancer;
    }
    let h = balancer.pick(hosts, ctx);
    if (h && tried && tried.length > 0 && hosts.length > tried.length) {
      for (let i = 0; i < HOST_SELECTION_RETRY_MAX_ATTEMPTS && h && tried.includes(h); i++) h = balancer.pick(hosts, { ...ctx, hash: undefined });
    }
    return h;
  }

  private tierFor(draw: number): Tier {
    const tiers = this.tiers;
    for (let i = 0; i < tiers.length - 1; i++) if (draw < tiers[i]!.upTo) return tiers[i]!;
    return tiers[tiers.length - 1]!;
  }

  /**
   * One more retry in flight, if max_retries and the retry budgets allow it (then it holds
   * a slot until admission.retryDone()). Istio's retryBudget is Envoy's concurrency budget —
   * retries in flight ≤ max(percent of requests in flight, minRetryConcurrency) — and
   * nodemesh adds Linkerd's rate budget; a retry needs both (either alone would let retries
   * amplify an outage in some regime).
   */
  reserveRetry(): boolean {
    const a = this.admission;
    if (!a.tryRetry()) {
      retryOverflow.inc({ cluster_name: this.name, reason: 'max_retries' });
      return false;
    }
    const b = this.budget.config;
    const concurrencyOk = !(b.minRetryConcurrency > 0) || a.retries <= Math.max((b.percent / 100) * (a.active + a.pending), b.minRetryConcurrency);
    if (!concurrencyOk || !this.budget.withdraw()) {
      retryOverflow.inc({ cluster_name: this.name, reason: concurrencyOk ? 'rate' : 'concurrency' });
      a.retryDone();
      return false;
    }
    return true;
  }

  /** A try to `h` started / ended (for least-request and peak EWMA). */
  begin(h: Host): void {
    h.active++;
  }

  end(h: Host, rttMs: number): void {
    h.active--;
    if (rttMs >= 0) observeRtt(h, rttMs, this.clock.monotonic());
  }

  /** `latencyMs` < 0: no latency to learn from (L4) */
  onResponse(h: Host, status: number, latencyMs: number): void {
    this.outlier.onResponse(h.key, status, this.clock.monotonic(), latencyMs >= 0 ? latencyMs : undefined);
  }

  onLocalFailure(h: Host, kind: LocalOrigin): void {
    this.outlier.onLocalFailure(h.key, kind, this.clock.monotonic());
  }

  poolOptions(dial: UpstreamRequest): PoolOptions {
    const cp = this.policy.connectionPool;
    const hook = this.onConnection;
    return {
      connectTimeoutMs: cp.connectTimeoutMs,
      idleTimeoutMs: cp.httpIdleTimeoutMs,
      maxRequestsPerConnection: cp.maxRequestsPerConnection,
      onConnection: hook ? (d) => hook(d, dial, this) : undefined,
    };
  }

  /** The HTTP/1.1 pool of `from`'s source pod to `h` (made on first use). */
  http1Pool(h: Host, from: Downstream): Http1Pool {
    let p = h.http1.get(from.sourceKey);
    if (!p) {
      const dial = dialInfo(from, h);
      p = new Http1Pool(this.connector, dial, this.poolOptions(dial));
      h.http1.set(from.sourceKey, p);
    }
    return p;
  }

  /** The HTTP/2 pool of `from`'s source pod to `h` (made on first use). */
  http2Pool(h: Host, from: Downstream): Http2Pool {
    let p = h.http2.get(from.sourceKey);
    if (!p) {
      const dial = dialInfo(from, h);
      p = new Http2Pool(this.connector, dial, this.poolOptions(dial));
      h.http2.set(from.sourceKey, p);
    }
    return p;
  }

  /**
   * Closes the pools of sources that are gone (`live` says which source keys still are):
   * their idle connections at once, busy ones when their request is done. Pools of live
   * sources keep their keep-alive connections.
   */
  trimPools(live: (sourceKey: string) => boolean): void {
    for (const h of this.hosts) {
      for (const [k, p] of h.http1) if (!live(k)) (p.close(), h.http1.delete(k));
      for (const [k, p] of h.http2) if (!live(k)) (p.close(), h.http2.delete(k));
    }
  }

  dispose(): void {
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
    this.admission.drain();
    for (const h of this.hosts) h.closePools();
  }

  /** For the scrape (telemetry/mesh-metrics.ts). */
  stats(): ClusterStats {
    let http1 = 0;
    let http2 = 0;
    for (const h of this.hosts) {
      for (const p of h.http1.values()) http1 += p.size;
      for (const p of h.http2.values()) http2 += p.size;
    }
    return { name: this.name, service: this.service.hostname, pending: this.admission.pending, hostsEjected: this.outlier.ejected, connections: { http1, http2 } };
  }

  debug(): Record<string, unknown> {
    return {
      name: this.name,
      policy: this.policy.loadBalancer.consistentHash ? 'consistentHash' : this.policy.loadBalancer.simple,
      active: this.admission.active,
      pending: this.admission.pending,
      retriesInFlight: this.admission.retries,
      retryBudget: this.budget.available(),
      // the groups with traffic now and their share of it (panic: none, every host shares)
      localities: this.plan && {
        mode: this.plan.mode,
        groups: this.tiers.map((t, i) => ({
          localities: [...new Set(t.hosts.map((h) => h.endpoint.locality ?? ''))],
          healthy: t.usable.length,
          share: Math.round((t.upTo - (i > 0 ? this.tiers[i - 1]!.upTo : 0)) * 1000) / 1000,
        })),
      },
      hosts: this.hosts.map((h) => ({
        address: h.key,
        locality: h.endpoint.locality,
        workload: h.endpoint.workload,
        active: h.active,
        rttEstimateMs: Math.round(h.rttEstimate * 10) / 10,
        ejected: this.outlier.isEjected(h.key),
        timesEjected: this.outlier.timesEjected(h.key),
      })),
    };
  }
}
