// The routing part of a snapshot, indexed for the request path: route tables per Service host
// (the producer table, and consumer tables per caller namespace), destination policies per
// host, endpoints per (host, subset, port). Built once per snapshot, with every matcher,
// weighted picker and retry policy compiled; a request reads the index that is current when
// it starts, so a config change applies to new requests and never to one in flight.
//
// Mesh defaults, for a Service with no RouteTable and no DestinationPolicy (Istio's):
//   one route to the Service itself, on the port the request came in on;
//   retries: 2, on connect-failure, refused-stream, unavailable and cancelled (Istio's
//     DefaultPolicy, which no longer lists 503); backoff 25 ms base, 250 ms max;
//     no timeout; a retry prefers an endpoint not tried yet;
//   defaultTrafficPolicy() of the contract: LEAST_REQUEST; connection pool unlimited
//   (2^32−1), connect timeout 10 s, idle 1 h; no outlier detection; retry budget 20% + 10/s
//   over 10 s (nodemesh, Linkerd's defaults).
import { defaultRetryPolicy, defaultTrafficPolicy } from '../../control/api/snapshot-routing.js';
import type {
  Destination,
  DestinationPolicy,
  HttpRoute,
  RetryPolicy,
  RouteTable,
  RoutingConfig,
  TcpRoute,
  TrafficPolicy,
} from '../../control/api/snapshot-routing.js';
import type { Endpoint, Service, ServicePort, Snapshot, Workload } from '../../control/api/snapshot.js';
import { compileRetry, type CompiledRetry } from './retry.js';
import { compileUriRegex, type CompiledUriRegex } from './header-ops.js';
import { compileRoute, type CompiledRoute } from './route-match.js';
import { WeightedPicker } from './weighted-picker.js';

/**
 * Istio's default retry policy, the same one the control plane fills in for a route without
 * `retries` (one definition: control/api/snapshot-routing.ts). Current Istio no longer
 * retries 503 by default (istio/istio#52111): an application's 503 may not be safe to retry.
 */
export const MESH_DEFAULT_RETRY: RetryPolicy = defaultRetryPolicy();

export const MESH_DEFAULT_POLICY: TrafficPolicy = defaultTrafficPolicy();

const NO_HEADER_OPS = { set: {}, add: {}, remove: [] };

/** A route with everything the request path needs compiled. */
export interface RouteEntry {
  readonly route: HttpRoute;
  readonly match: CompiledRoute;
  readonly picker: WeightedPicker<Destination>;
  readonly retry: CompiledRetry;
  readonly uriRegex: CompiledUriRegex | undefined;
  /** the table's source, for debugging */
  readonly source: string;
}

export interface CompiledTable {
  readonly table: RouteTable | undefined;
  readonly http: RouteEntry[];
  readonly tcp: { route: TcpRoute; picker: WeightedPicker<Destination> }[];
  readonly noMatch: 'passthrough' | 'notFound';
}

/** Where a (host, subset, port) leads: the Service port and its endpoints in that subset. */
export interface ClusterSpec {
  host: string;
  subset: string;
  port: number;
  service: Service;
  servicePort: ServicePort;
  endpoints: Endpoint[];
  policy: TrafficPolicy;
}

export function compileEntry(route: HttpRoute, source: string): RouteEntry {
  const gateway = source.startsWith('HTTPRoute');
  return {
    route,
    match: compileRoute(route),
    // Gateway API: a lone backendRef of weight 0 gets nothing; Istio: a lone destination gets all
    picker: new WeightedPicker(
      (route.destinations ?? []).map((d) => ({ item: d, weight: d.weight })),
      !gateway,
    ),
    retry: compileRetry(route.retries),
    uriRegex: route.rewrite?.uriRegex?.match ? compileUriRegex(route.rewrite.uriRegex) : undefined,
    source,
  };
}

/** The route of a Service without a RouteTable: to itself, with the mesh's default retries. */
function defaultTable(host: string): CompiledTable {
  const route: HttpRoute = {
    name: 'default',
    match: [],
    destinations: [{ host, subset: '', port: 0, weight: 100, headers: { request: NO_HEADER_OPS, response: NO_HEADER_OPS }, failStatus: 0 }],
    timeoutMs: 0,
    retries: MESH_DEFAULT_RETRY,
    headers: { request: NO_HEADER_OPS, response: NO_HEADER_OPS },
    mirrors: [],
  };
  const entry = compileEntry(route, 'mesh default');
  return { table: undefined, http: [entry], tcp: [], noMatch: 'passthrough' };
}

function compileTable(t: RouteTable): CompiledTable {
  return {
    table: t,
    http: (t.http ?? []).map((r) => compileEntry(r, t.source)),
    tcp: (t.tcp ?? []).map((r) => ({ route: r, picker: new WeightedPicker((r.destinations ?? []).map((d) => ({ item: d, weight: d.weight }))) })),
    noMatch: t.noMatch === 'notFound' ? 'notFound' : 'passthrough',
  };
}

let generations = 0;

export class RoutingIndex {
  readonly generation = ++generations;
  readonly workloads = new Map<string, Workload>();
  private readonly services = new Map<string, Service>();
  private readonly producer = new Map<string, CompiledTable>();
  private readonly consumer = new Map<string, CompiledTable>();
  private readonly defaults = new Map<string, CompiledTable>();
  private readonly policies = new Map<string, DestinationPolicy>();

  constructor(snapshot: Snapshot | undefined) {
    if (!snapshot) return;
    for (const w of snapshot.workloads) this.workloads.set(w.uid, w);
    for (const s of snapshot.services) this.services.set(s.hostname, s);
    const routing: RoutingConfig = snapshot.routing ?? { routes: [], destinations: [] };
    for (const t of routing.routes ?? []) {
      const c = compileTable(t);
      if (t.consumerNamespace) this.consumer.set(`${t.host}|${t.consumerNamespace}`, c);
      else this.producer.set(t.host, c);
    }
    for (const d of routing.destinations ?? []) this.policies.set(d.host, d);
  }

  service(host: string): Service | undefined {
    return this.services.get(host);
  }

  /**
   * The routes for a caller in `sourceNamespace`: GAMMA "a consumer route ... applies only to
   * callers in that namespace" and wins over the producer's; else the producer table; else the
   * mesh default (the Service itself).
   */
  table(host: string, sourceNamespace: string): CompiledTable {
    const c = this.consumer.get(`${host}|${sourceNamespace}`) ?? this.producer.get(host);
    if (c) return c;
    this.defaultEntry(host);
    return this.defaults.get(host)!;
  }

  /** The mesh default route of a host (to the Service itself): where Istio sends unmatched requests. */
  defaultEntry(host: string): RouteEntry {
    let d = this.defaults.get(host);
    if (!d) {
      d = defaultTable(host);
      this.defaults.set(host, d);
    }
    return d.http[0]!;
  }

  /** Subset, then port-level, then host-level policy; mesh defaults without a DestinationRule. */
  policy(host: string, subset: string, port: number): TrafficPolicy {
    const d = this.policies.get(host);
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

  /** undefined when the host is unknown, the port is not one of its ports, or the subset is not defined. */
  cluster(host: string, subset: string, port: number): ClusterSpec | undefined {
    const service = this.services.get(host);
    if (!service) return undefined;
    const servicePort = service.ports.find((p) => p.port === port);
    if (!servicePort) return undefined;
    let endpoints = servicePort.endpoints;
    if (subset) {
      const s = this.policies.get(host)?.subsets.find((x) => x.name === subset);
      if (!s) return undefined; // Envoy: a route to an undefined subset has no cluster
      const want = Object.entries(s.labels ?? {});
      endpoints = endpoints.filter((ep) => {
        const labels = this.workloads.get(ep.workload)?.labels;
        return labels !== undefined && want.every(([k, v]) => labels[k] === v);
      });
    }
    return { host, subset, port, service, servicePort, endpoints, policy: this.policy(host, subset, port) };
  }
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
