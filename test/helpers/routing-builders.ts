// RoutingConfig pieces for tests, with the defaults the control plane fills in.
import { defaultRetryPolicy, defaultTrafficPolicy } from '../../control/api/snapshot-routing.js';
import type {
  Destination,
  DestinationPolicy,
  HttpMatch,
  HttpRoute,
  RetryPolicy,
  RouteTable,
  StringMatch,
  TrafficPolicy,
} from '../../control/api/snapshot-routing.js';

export const HOST = 'web.shop.svc.cluster.local';

const noOps = () => ({ set: {}, add: {}, remove: [] as string[] });

export function dest(subset = '', weight = 100, over: Partial<Destination> = {}): Destination {
  return { host: HOST, subset, port: 0, weight, headers: { request: noOps(), response: noOps() }, failStatus: 0, ...over };
}

export function sm(kind: StringMatch['kind'], value: string): StringMatch {
  return { kind, value, ignoreCase: false };
}

export function match(m: Partial<HttpMatch>): HttpMatch {
  return { headers: [], withoutHeaders: [], queryParams: [], port: 0, sourceLabels: {}, sourceNamespace: '', ...m };
}

export function retries(over: Partial<RetryPolicy> = {}): RetryPolicy {
  return { ...defaultRetryPolicy(), ...over };
}

export function route(over: Partial<HttpRoute> = {}): HttpRoute {
  return {
    name: 'r',
    match: [],
    destinations: [dest()],
    timeoutMs: 0,
    retries: retries({ attempts: 0 }),
    headers: { request: noOps(), response: noOps() },
    mirrors: [],
    ...over,
  };
}

export function table(http: HttpRoute[], over: Partial<RouteTable> = {}): RouteTable {
  return { host: HOST, consumerNamespace: '', http, tcp: [], source: 'VirtualService shop/web', noMatch: 'passthrough', ...over };
}

/** defaultTrafficPolicy() with nested overrides. */
export function policy(over: { [K in keyof TrafficPolicy]?: Partial<TrafficPolicy[K]> } = {}): TrafficPolicy {
  const d = defaultTrafficPolicy();
  return {
    loadBalancer: { ...d.loadBalancer, ...over.loadBalancer },
    connectionPool: { ...d.connectionPool, ...over.connectionPool },
    outlierDetection: { ...d.outlierDetection, ...over.outlierDetection },
    retryBudget: { ...d.retryBudget, ...over.retryBudget },
  };
}

export function destinationRule(p: TrafficPolicy, subsets: { name: string; labels: Record<string, string> }[] = []): DestinationPolicy {
  return { host: HOST, policy: p, ports: [], subsets: subsets.map((s) => ({ ...s, policy: p, ports: [] })), source: 'DestinationRule shop/web' };
}
