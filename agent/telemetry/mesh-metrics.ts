// nodemesh's own metrics beside Istio's: what Envoy's cluster stats tell a sidecar user
// (retries, retry overflow, circuit-breaker trips, pending requests, outlier ejections, pool
// sizes) and what the node proxy costs its node. Labels are bounded by configuration (a
// Service hostname, an Envoy cluster name, a fixed reason word), never by requests or pods.
// Gauges are read when Prometheus scrapes (collect), so the data path keeps no gauge; the
// counters count rare events (a retry, an overflow, an ejection), never every request.
import { Counter, Gauge } from '../../common/prometheus.js';
import { registry } from './metrics.js';

/** One destination cluster's state, read at scrape time. */
export interface ClusterStats {
  /** Envoy's cluster name: outbound|<port>|<subset>|<host> */
  name: string;
  /** the Service hostname */
  service: string;
  pending: number;
  hostsEjected: number;
  /** upstream connections held in its pools (HTTP/1.1 sockets, HTTP/2 sessions) */
  connections: { http1: number; http2: number };
}

export interface NodeStats {
  clusters(): Iterable<ClusterStats>;
  /** meshed pods on this node (in the current snapshot) */
  meshedPods(): number;
}

/**
 * Where the scrape reads cluster and node state. Two owners: the process that serves (its
 * clusters: with proxy workers each worker has its own pools, so the sums over workers that
 * /metrics takes are the node's) and the agent (the meshed pods, set by the primary only, so
 * that the sum over processes counts them once and the savings gauge subtracts every
 * process's memory once).
 */
const source: Partial<NodeStats> = {};
export function setClusterStats(clusters: NodeStats['clusters'] | undefined): void {
  if (clusters) source.clusters = clusters;
  else delete source.clusters;
}
export function setMeshedPods(meshedPods: NodeStats['meshedPods'] | undefined): void {
  if (meshedPods) source.meshedPods = meshedPods;
  else delete source.meshedPods;
}

/**
 * Memory one Envoy sidecar takes, for the savings gauge: "The Envoy proxy uses 0.35 vCPU and
 * 40 MB memory per 1000 requests per second going through the proxy" (Istio's performance
 * summary, 1.12–1.16, istio.io/latest/docs/ops/deployment/performance-and-scalability/),
 * i.e. at a modest 1,000 rps per pod. NODEMESH_SIDECAR_MEMORY_BYTES sets another figure.
 */
export const SIDECAR_MEMORY_BYTES = Number(process.env.NODEMESH_SIDECAR_MEMORY_BYTES) || 40_000_000;

const open = { source: 0, destination: 0 };
/** A proxied connection opened / closed at a reporter (transport/flow.ts). */
export function connectionOpened(reporter: string): void {
  if (reporter === 'destination') open.destination++;
  else open.source++;
}
export function connectionClosed(reporter: string): void {
  if (reporter === 'destination') open.destination--;
  else open.source--;
}

export const retries = new Counter({
  name: 'nodemesh_agent_retries_total',
  help: 'Retries the node proxy made (tries beyond the first), by destination Service and the outcome of the request they served (success: answered below 500)',
  labelNames: ['destination_service', 'outcome'],
  registers: [registry],
});
export const retryOverflow = new Counter({
  name: 'nodemesh_agent_retry_overflow_total',
  help: "Retries refused (Envoy's upstream_rq_retry_overflow), by destination cluster and which limit refused: max_retries (the circuit breaker), concurrency (Istio's retryBudget) or rate (the per-window budget)",
  labelNames: ['cluster_name', 'reason'],
  registers: [registry],
});
export const circuitBreakerOverflow = new Counter({
  name: 'nodemesh_agent_circuit_breaker_overflow_total',
  help: "Requests answered 503 UO by a cluster's circuit breaker (connectionPool limits: Envoy's upstream_rq_pending_overflow)",
  labelNames: ['cluster_name'],
  registers: [registry],
});
export const outlierEjections = new Counter({
  name: 'nodemesh_agent_outlier_ejections_total',
  help: 'Endpoints ejected by outlier detection, by cluster and reason (consecutive-5xx, consecutive-gateway-errors, consecutive-local-origin-failures, latency)',
  labelNames: ['cluster_name', 'reason'],
  registers: [registry],
});

new Gauge({
  name: 'nodemesh_agent_pending_requests',
  help: "Requests queued by a cluster's circuit breaker, waiting for a slot",
  labelNames: ['cluster_name'],
  registers: [registry],
  collect() {
    this.reset();
    for (const c of source.clusters?.() ?? []) this.set({ cluster_name: c.name }, c.pending);
  },
});
new Gauge({
  name: 'nodemesh_agent_hosts_ejected',
  help: 'Endpoints of a cluster ejected by outlier detection now',
  labelNames: ['cluster_name'],
  registers: [registry],
  collect() {
    this.reset();
    for (const c of source.clusters?.() ?? []) this.set({ cluster_name: c.name }, c.hostsEjected);
  },
});
new Gauge({
  name: 'nodemesh_agent_upstream_connections',
  help: "Connections in a cluster's upstream pools (per source pod and endpoint), by protocol",
  labelNames: ['cluster_name', 'protocol'],
  registers: [registry],
  collect() {
    this.reset();
    for (const c of source.clusters?.() ?? []) {
      this.set({ cluster_name: c.name, protocol: 'http1' }, c.connections.http1);
      this.set({ cluster_name: c.name, protocol: 'http2' }, c.connections.http2);
    }
  },
});
const meshedPods = new Gauge({
  name: 'nodemesh_agent_meshed_pods',
  help: 'Meshed pods on this node (the snapshot says so); their traffic goes through this node proxy',
  registers: [registry],
  collect() {
    this.set(source.meshedPods?.() ?? 0);
  },
});
void meshedPods;
new Gauge({
  name: 'nodemesh_agent_open_connections',
  help: 'Connections the node proxy carries now: reporter source (from local pods) or destination (to local pods)',
  labelNames: ['reporter'],
  registers: [registry],
  collect() {
    this.set({ reporter: 'source' }, open.source);
    this.set({ reporter: 'destination' }, open.destination);
  },
});
new Gauge({
  name: 'nodemesh_agent_sidecar_memory_saved_bytes',
  help: `Memory one sidecar per meshed pod would take (${SIDECAR_MEMORY_BYTES} bytes each, Istio's published Envoy figure) minus this node proxy's resident memory`,
  registers: [registry],
  collect() {
    this.set((source.meshedPods?.() ?? 0) * SIDECAR_MEMORY_BYTES - process.memoryUsage.rss());
  },
});

/** The request-time counters: retries of an ended request at the source. */
export function countRetries(service: string, retried: number, status: number): void {
  retries.inc({ destination_service: service, outcome: status > 0 && status < 500 ? 'success' : 'failure' }, retried);
}
