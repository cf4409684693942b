// The destination clusters of one node proxy, kept across snapshots by name (port, subset,
// host). A request or a TCP connection asks for the cluster of its destination in the state
// it started with; a cluster is brought up to date when a newer state asks for it, and the
// first newer state seen updates them all and drops those whose destination is gone, so a
// config push never resets ejections or drops pooled connections of endpoints that stay.
//
// Where a (host, subset, port) leads is read from the state: the Service port, its endpoints
// in the DestinationRule subset, and the traffic policy — subset, then port-level, then
// host-level, else the mesh defaults, defaultTrafficPolicy() of the contract (Istio's):
// LEAST_REQUEST; connection pool unlimited (2^32−1), connect timeout 10 s, idle 1 h; no
// outlier detection; retry budget 20% + 10/s over 10 s (nodemesh, Linkerd's defaults).
import type { Duplex } from 'node:stream';
import { defaultTrafficPolicy, type Destination, type DestinationPolicy, type TrafficPolicy } from '../../control/api/snapshot-routing.js';
import type { Service } from '../../control/api/snapshot.js';
import { systemClock, type Clock } from '../../common/clock.js';
import { logger } from '../../common/log.js';
import { Cluster, dialInfo, type ClusterSpec, type Host } from './cluster.js';
import type { Downstream } from '../transport/connection.js';
import type { UpstreamConnector, UpstreamRequest, UpstreamSecurity } from '../transport/connector.js';
import type { ProxyState } from '../state/proxy-state.js';
import { labelSet, type LabelSet } from '../telemetry/request-telemetry.js';
import type { ClusterStats } from '../telemetry/mesh-metrics.js';
import { FlowSet, trackUntilClose } from '../transport/flow.js';
import { tcpLabels } from '../telemetry/metrics.js';

const log = logger('agent/cluster-set');

export const MESH_DEFAULT_POLICY: TrafficPolicy = defaultTrafficPolicy();

export class ClusterSet {
  private readonly clusters = new Map<string, Cluster>();
  /** each cluster's policy variant: "" (every caller) or the namespace whose own DestinationRule it follows */
  private readonly variants = new WeakMap<Cluster, string>();
  /** the generation of the newest state seen */
  private generation = 0;
  /** label sets of requests answered without an endpoint, per (source, Service, protocol); per state */
  private readonly localLabels = new Map<string, LabelSet>();
  /** Istio's TCP metrics of the connections opened to endpoints (see transport/flow.ts) */
  private readonly connections = new FlowSet();
  private readonly onConnection = (d: Duplex, dial: UpstreamRequest, c: Cluster) => {
    const l = tcpLabels(dial.source, c.service, dial.destination, `${dial.ip}:${dial.port}`, '-');
    const sec = this.connector.security?.(dial);
    if (sec) {
      l.connection_security_policy = sec.policy;
      l.source_principal = sec.sourcePrincipal || 'unknown';
      l.destination_principal = sec.destinationPrincipal || 'unknown';
    }
    trackUntilClose(this.connections, d, l, 'upstream', dial.source);
  };

  constructor(
    readonly connector: UpstreamConnector,
    readonly clock: Clock = systemClock,
    /** the node this proxy runs on: its locality is every source's (locality load balancing) */
    readonly node = '',
  ) {}

  /**
   * The cluster a destination leads to in `state` (`port` 0: the port the request came in on)
   * for a caller of `namespace`: callers whose namespace has a DestinationRule of its own for
   * the host (exportTo) get their own cluster; every other caller shares the common one.
   */
  get(state: ProxyState, d: Destination, requestPort: number, namespace?: string): Cluster | undefined {
    if (state.generation > this.generation) this.adopt(state);
    const port = d.port || requestPort;
    const variant = state.policyVariant(d.host, namespace);
    const name = `${port}|${d.subset}|${d.host}|${variant}`;
    const c = this.clusters.get(name);
    if (c && c.generation >= state.generation) return c;
    const spec = clusterSpec(state, d.host, d.subset, port, this.node, variant);
    if (!spec) return undefined;
    if (c) {
      c.update(state, spec);
      return c;
    }
    const created = new Cluster(d.host, d.subset, port, state, spec, this.clock, this.connector, this.onConnection);
    this.clusters.set(name, created);
    this.variants.set(created, variant);
    return created;
  }

  /** A newer state: bring every cluster up to date, drop those whose destination is gone. */
  private adopt(state: ProxyState): void {
    this.generation = state.generation;
    this.localLabels.clear();
    for (const [name, c] of this.clusters) {
      const variant = this.variants.get(c) ?? '';
      // a namespace's own policy gone: its callers' cluster goes, they join the common one
      const spec = variant && !state.destinationPolicy(c.host, variant) ? undefined : clusterSpec(state, c.host, c.subset, c.port, this.node, variant);
      if (!spec) {
        c.dispose();
        this.clusters.delete(name);
        continue;
      }
      c.update(state, spec);
      // pools are per source pod: those of pods that left go (sources without a pod, keyed
      // by address, keep theirs while the cluster lives)
      c.trimPools((key) => state.workloadByUid(key) !== undefined || !key.includes('/'));
    }
  }

  /**
   * The Istio label set of a request from `from` to `service`, answered by `host` or (without
   * one) by the proxy itself; built once and kept, on the host per source.
   */
  requestLabels(state: ProxyState, from: Downstream, service: Service, host: Host | undefined, grpc: boolean): LabelSet {
    if (state.generation > this.generation) this.adopt(state);
    if (host) {
      let e = host.labels.get(from.sourceKey);
      if (!e) host.labels.set(from.sourceKey, (e = {}));
      const cached = grpc ? e.grpc : e.http;
      if (cached) return cached;
      const made = labelSet(from.source, service, host.workload, host.key, grpc ? 'grpc' : 'http', this.security(from, host));
      if (grpc) e.grpc = made;
      else e.http = made;
      return made;
    }
    const key = `${from.sourceKey}|${service.hostname}|${grpc ? 'g' : 'h'}`;
    let s = this.localLabels.get(key);
    if (!s) {
      s = labelSet(from.source, service, undefined, service.hostname, grpc ? 'grpc' : 'http', undefined);
      this.localLabels.set(key, s);
    }
    return s;
  }

  /** How the connector would carry a connection (mTLS principals), if it says. */
  private security(from: Downstream, host: Host): UpstreamSecurity | undefined {
    return this.connector.security?.(dialInfo(from, host));
  }

  /** Every cluster's state for the scrape (telemetry/mesh-metrics.ts). */
  *stats(): Iterable<ClusterStats> {
    for (const c of this.clusters.values()) yield c.stats();
  }

  debug(): Record<string, unknown> {
    return { clusters: [...this.clusters.values()].map((c) => c.debug()) };
  }

  close(): void {
    for (const c of this.clusters.values()) c.dispose();
    this.clusters.clear();
    this.connections.close();
    log.debug('clusters closed');
  }
}

/** undefined when the host is unknown, the port is not one of its ports, or the subset is not defined. */
export function clusterSpec(state: ProxyState, host: string, subset: string, port: number, node = '', variant = ''): ClusterSpec | undefined {
  const service = state.serviceByHost(host);
  if (!service) return undefined;
  const servicePort = service.ports.find((p) => p.port === port);
  if (!servicePort) return undefined;
  const rule = state.destinationPolicy(host, variant);
  let endpoints = servicePort.endpoints;
  if (subset) {
    const s = rule?.subsets.find((x) => x.name === subset);
    if (!s) return undefined; // Envoy: a route to an undefined subset has no cluster
    const want = Object.entries(s.labels ?? {});
    endpoints = endpoints.filter((ep) => {
      const labels = state.workloadByUid(ep.workload)?.labels;
      return labels !== undefined && want.every(([k, v]) => labels[k] === v);
    });
  }
  return { service, servicePort, endpoints, policy: trafficPolicy(rule, subset, port), locality: state.nodeLocality(node) };
}

/** Subset, then port-level, then host-level policy; mesh defaults without a DestinationRule. */
export function trafficPolicy(d: DestinationPolicy | undefined, subset: string, port: number): TrafficPolicy {
  if (!d) return MESH_DEFAULT_POLICY;
  if (subset) {
    const s = d.subsets.find((x) => x.name === subset);
    if (s) {
      const byPort = s.ports?.find((p) => p.port === port);
      return withDefaults(byPort?.policy ?? s.policy);
    }
  }
  return withDefaults(d.ports.find((p) => p.port === port)?.policy ?? d.policy);
}

/** A policy as received may lack the nodemesh-only parts (older control planes): fill them in. */
function withDefaults(p: TrafficPolicy): TrafficPolicy {
  if (p.retryBudget && p.connectionPool && p.outlierDetection && p.loadBalancer) return p;
  return {
    loadBalancer: p.loadBalancer ?? MESH_DEFAULT_POLICY.loadBalancer,
    connectionPool: p.connectionPool ?? MESH_DEFAULT_POLICY.connectionPool,
    outlierDetection: p.outlierDetection ?? MESH_DEFAULT_POLICY.outlierDetection,
    retryBudget: p.retryBudget ?? MESH_DEFAULT_POLICY.retryBudget,
  };
}
