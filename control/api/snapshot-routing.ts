// Traffic management in the snapshot (mirrors routing.proto): what Istio VirtualService /
// DestinationRule and Gateway API HTTPRoute (GAMMA) compile to. The agent consumes only
// this; it never sees Istio or Gateway API YAML.
//
// Conventions: durations are integer milliseconds, 0 = unset/disabled unless the field
// says otherwise; percentages are 0–100 (floats); every default Istio documents is filled
// in by the control plane, so the agent applies values as they are. A Service with no
// RouteTable gets the agent's mesh defaults (round-robin... see agent/routing docs); a
// host with no DestinationPolicy gets defaultTrafficPolicy() below.
//
// Header names (matches, HeaderOps) are lowercase, as Envoy normalises them. A `regex`
// StringMatch holds a pattern the control plane has checked to mean the same in RE2 (what
// Istio and Envoy use) and in JavaScript (RE2-only spellings such as `(?P<n>`, `\A`, `\z`
// and a leading `(?i)` are translated; constructs outside both are rejected). Like Envoy's
// safe_regex it must match the WHOLE value: `new RegExp(`^(?:${value})$`, ignoreCase ? 'i' : '')`.

/** How one string is matched. `pathPrefix` is Gateway API's PathPrefix: per path element. */
export interface StringMatch {
  kind: 'exact' | 'prefix' | 'regex' | 'present' | 'pathPrefix';
  /** empty for `present` */
  value: string;
  ignoreCase: boolean;
}

export interface NamedMatch {
  /** header names lowercase; query parameter names as written */
  name: string;
  match: StringMatch;
}

/** One match block: every set condition must hold (AND). A route's blocks are OR'd. */
export interface HttpMatch {
  uri?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  scheme?: StringMatch;
  headers: NamedMatch[];
  /** headers that must NOT match */
  withoutHeaders: NamedMatch[];
  queryParams: NamedMatch[];
  /** the Service port the request was sent to; 0 = any */
  port: number;
  /** VirtualService sourceLabels: the calling workload's labels must include these */
  sourceLabels: Record<string, string>;
  /** VirtualService sourceNamespace; "" = any */
  sourceNamespace: string;
}

export interface HeaderOps {
  set: Record<string, string>;
  add: Record<string, string>;
  remove: string[];
}

export interface Destination {
  /** Service hostname `name.ns.svc.cluster.local` */
  host: string;
  /** DestinationRule subset name; "" = every endpoint */
  subset: string;
  /** Service port; 0 = the port the request came in on */
  port: number;
  /** relative weight; share = weight / sum of the route's weights */
  weight: number;
  headers: { request: HeaderOps; response: HeaderOps };
  /**
   * 0: forward. Otherwise answer this status instead of forwarding this destination's share
   * (Gateway API: "500 status codes MUST be returned for requests that would have otherwise
   * been routed to an invalid backend", e.g. a backendRef to a Service that does not exist).
   */
  failStatus: number;
}

export interface RetryPolicy {
  /** retries after the first try (VirtualService attempts; 0 disables) */
  attempts: number;
  /** 0 = the route timeout */
  perTryTimeoutMs: number;
  /** Envoy retry_on tokens, e.g. 5xx, gateway-error, connect-failure, unavailable */
  retryOn: string[];
  /** retriable-status-codes (bare integers in retryOn, Gateway API retry.codes) */
  retriableStatusCodes: number[];
  /** Envoy's base interval (25 ms) and max (10 × base) for full-jitter exponential backoff */
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export interface Fault {
  delay?: { fixedDelayMs: number; percentage: number };
  abort?: { httpStatus: number; grpcStatus: string; percentage: number };
}

export interface Redirect {
  /** "" = keep */
  uri: string;
  /** Gateway API: replace the matched prefix instead of the whole path */
  replacePrefixMatch: string;
  authority: string;
  scheme: string;
  port: number;
  /** 301 by default */
  status: number;
}

export interface Rewrite {
  /** replaces the matched prefix (Istio uri rewrite on a prefix match) or the full path */
  uri: string;
  /** Gateway API ReplacePrefixMatch ("" = not used) */
  replacePrefixMatch: string;
  /** full replacement path (Gateway API ReplaceFullPath) */
  replaceFullPath: string;
  /** Envoy regex_rewrite: every match of `match` (RE2) replaced; `rewrite` uses `\1` group references */
  uriRegex?: { match: string; rewrite: string };
  authority: string;
}

export interface Mirror {
  destination: Destination;
  /** 0–100 */
  percentage: number;
}

export interface HttpRoute {
  /** route name, or `<kind> <ns>/<name> rule <i>` — for telemetry and debugging */
  name: string;
  /** OR of AND-blocks; empty = match everything */
  match: HttpMatch[];
  /** weighted destinations; empty when the route redirects or answers directly */
  destinations: Destination[];
  redirect?: Redirect;
  directResponse?: { status: number; body: string };
  rewrite?: Rewrite;
  /** whole-request timeout; 0 = none (Istio's default: disabled) */
  timeoutMs: number;
  retries: RetryPolicy;
  fault?: Fault;
  headers: { request: HeaderOps; response: HeaderOps };
  mirrors: Mirror[];
}

/** VirtualService tcp[] (or TCPRoute): weighted L4 destinations for a port. */
export interface TcpRoute {
  /** 0 = any port */
  port: number;
  destinations: Destination[];
}

/**
 * The routes for one Service host. A producer table (consumerNamespace "") applies to every
 * caller; a GAMMA consumer route (HTTPRoute in another namespace) yields a table that
 * applies only to callers in that namespace and wins over the producer table for them.
 */
export interface RouteTable {
  host: string;
  consumerNamespace: string;
  /** first match wins (VirtualService order; HTTPRoute rules sorted by Gateway API precedence) */
  http: HttpRoute[];
  tcp: TcpRoute[];
  /** where the table came from, e.g. `VirtualService bookinfo/reviews` */
  source: string;
  /**
   * What to do when no http route matches: 'notFound' answers 404 (Envoy's NR), as both an
   * Istio VirtualService and Gateway API do; the control plane appends a route to the Service
   * itself for each Service port none of the table's rules can match, so such ports behave
   * as if they had no routes. 'passthrough' (a table with tcp routes only): send the request
   * to the Service as if it had no routes.
   */
  noMatch: 'passthrough' | 'notFound';
}

export interface ConsistentHash {
  kind: 'header' | 'cookie' | 'sourceIp' | 'queryParam';
  /** header / cookie / query parameter name */
  name: string;
  cookiePath: string;
  cookieTtlMs: number;
}

export interface LoadBalancer {
  /** Istio's simple policies, plus PEAK_EWMA (Linkerd's latency-aware P2C). Istio: unset = LEAST_REQUEST */
  simple: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH' | 'PEAK_EWMA';
  consistentHash?: ConsistentHash;
}

export interface ConnectionPool {
  maxConnections: number;
  connectTimeoutMs: number;
  tcpIdleTimeoutMs: number;
  maxConnectionDurationMs: number;
  http1MaxPendingRequests: number;
  http2MaxRequests: number;
  /** 0 = unlimited; 1 disables keep-alive */
  maxRequestsPerConnection: number;
  maxRetries: number;
  httpIdleTimeoutMs: number;
}

export interface OutlierDetection {
  /** false when the DestinationRule has no outlierDetection */
  enabled: boolean;
  /** 0 disables */
  consecutive5xxErrors: number;
  /** 0 disables (Istio's default) */
  consecutiveGatewayErrors: number;
  consecutiveLocalOriginFailures: number;
  splitExternalLocalOriginErrors: boolean;
  intervalMs: number;
  baseEjectionTimeMs: number;
  /** Envoy's cap on baseEjectionTime × times ejected */
  maxEjectionTimeMs: number;
  maxEjectionPercent: number;
  minHealthPercent: number;
  /**
   * Beyond Istio; absent = off (the default). Eject an endpoint whose p99 latency over an
   * interval exceeds `factor` × the median p99 of the cluster's endpoints; endpoints with
   * fewer than `minRequests` requests in the interval are not judged.
   */
  latencyEjection?: { factor: number; minRequests: number };
}

/** Linkerd's model: retries ≤ percent of live requests + minRetriesPerSecond, over ttl. */
export interface RetryBudget {
  percent: number;
  minRetriesPerSecond: number;
  ttlMs: number;
  /**
   * Istio's `retryBudget.minRetryConcurrency`: retries in flight that are always allowed
   * whatever the ratio (Envoy's floor). 0 when the DestinationRule has no retryBudget.
   */
  minRetryConcurrency: number;
}

export interface TrafficPolicy {
  loadBalancer: LoadBalancer;
  connectionPool: ConnectionPool;
  outlierDetection: OutlierDetection;
  retryBudget: RetryBudget;
}

export interface Subset {
  name: string;
  labels: Record<string, string>;
  /** the rule's policy with the subset's overrides applied */
  policy: TrafficPolicy;
  /** per port: rule → rule's portLevelSettings → subset → subset's portLevelSettings (Istio's order) */
  ports: { port: number; policy: TrafficPolicy }[];
}

/** DestinationRule for one host, defaults filled in. */
export interface DestinationPolicy {
  host: string;
  policy: TrafficPolicy;
  /** portLevelSettings, each already merged over `policy` */
  ports: { port: number; policy: TrafficPolicy }[];
  subsets: Subset[];
  /** e.g. `DestinationRule bookinfo/reviews` */
  source: string;
}

export interface RoutingConfig {
  routes: RouteTable[];
  destinations: DestinationPolicy[];
}

export function emptyRouting(): RoutingConfig {
  return { routes: [], destinations: [] };
}

/** 2^32−1: Envoy's circuit-breaker "unlimited", Istio's documented default for the pool limits. */
export const UNLIMITED = 4294967295;

/**
 * Istio's defaults for a host with no DestinationRule (or a group the rule leaves out),
 * plus nodemesh's retry budget (on by default, Linkerd's 20% + 10/s over 10 s).
 */
export function defaultTrafficPolicy(): TrafficPolicy {
  return {
    loadBalancer: { simple: 'LEAST_REQUEST' },
    connectionPool: {
      maxConnections: UNLIMITED,
      connectTimeoutMs: 10_000,
      tcpIdleTimeoutMs: 3_600_000,
      maxConnectionDurationMs: 0,
      http1MaxPendingRequests: UNLIMITED,
      http2MaxRequests: UNLIMITED,
      maxRequestsPerConnection: 0,
      maxRetries: UNLIMITED,
      httpIdleTimeoutMs: 3_600_000,
    },
    outlierDetection: {
      enabled: false,
      consecutive5xxErrors: 5,
      consecutiveGatewayErrors: 0,
      consecutiveLocalOriginFailures: 5,
      splitExternalLocalOriginErrors: false,
      intervalMs: 10_000,
      baseEjectionTimeMs: 30_000,
      maxEjectionTimeMs: 300_000,
      maxEjectionPercent: 10,
      minHealthPercent: 0,
    },
    retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000, minRetryConcurrency: 0 },
  };
}

/** Istio's retry policy for a route that does not set `retries`: 2 retries, base backoff 25 ms. */
export function defaultRetryPolicy(): RetryPolicy {
  return {
    attempts: 2,
    perTryTimeoutMs: 0,
    retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
    retriableStatusCodes: [],
    backoffBaseMs: 25,
    backoffMaxMs: 250,
  };
}
