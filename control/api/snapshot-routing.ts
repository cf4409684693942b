// Traffic management in the snapshot: what Istio VirtualService / DestinationRule and Gateway
// API HTTPRoute (GAMMA) compile to. routing.proto defines and documents every message (its
// conventions: durations in ms, 0 = unset; percentages 0–100; lowercase header names; regexes
// that match the whole value); the types here derive from the generated ones, narrowed as
// snapshot.ts explains: the few-word fields to their known words, sub-messages never null.
import type { ConnectionPool__Output } from './generated/nodemesh/v1/ConnectionPool.js';
import type { ConsistentHash__Output } from './generated/nodemesh/v1/ConsistentHash.js';
import type { Destination__Output } from './generated/nodemesh/v1/Destination.js';
import type { DestinationPolicy__Output } from './generated/nodemesh/v1/DestinationPolicy.js';
import type { DirectResponse__Output } from './generated/nodemesh/v1/DirectResponse.js';
import type { Fault__Output } from './generated/nodemesh/v1/Fault.js';
import type { FaultAbort__Output } from './generated/nodemesh/v1/FaultAbort.js';
import type { FaultDelay__Output } from './generated/nodemesh/v1/FaultDelay.js';
import type { HeaderOps__Output } from './generated/nodemesh/v1/HeaderOps.js';
import type { Headers__Output } from './generated/nodemesh/v1/Headers.js';
import type { HttpMatch__Output } from './generated/nodemesh/v1/HttpMatch.js';
import type { HttpRoute__Output } from './generated/nodemesh/v1/HttpRoute.js';
import type { LatencyEjection__Output } from './generated/nodemesh/v1/LatencyEjection.js';
import type { LoadBalancer__Output } from './generated/nodemesh/v1/LoadBalancer.js';
import type { LocalityLb__Output } from './generated/nodemesh/v1/LocalityLb.js';
import type { Mirror__Output } from './generated/nodemesh/v1/Mirror.js';
import type { NamedMatch__Output } from './generated/nodemesh/v1/NamedMatch.js';
import type { OutlierDetection__Output } from './generated/nodemesh/v1/OutlierDetection.js';
import type { PortPolicy__Output } from './generated/nodemesh/v1/PortPolicy.js';
import type { Redirect__Output } from './generated/nodemesh/v1/Redirect.js';
import type { RegexRewrite__Output } from './generated/nodemesh/v1/RegexRewrite.js';
import type { RetryBudget__Output } from './generated/nodemesh/v1/RetryBudget.js';
import type { RetryPolicy__Output } from './generated/nodemesh/v1/RetryPolicy.js';
import type { Rewrite__Output } from './generated/nodemesh/v1/Rewrite.js';
import type { RouteTable__Output } from './generated/nodemesh/v1/RouteTable.js';
import type { RoutingConfig__Output } from './generated/nodemesh/v1/RoutingConfig.js';
import type { StringMatch__Output } from './generated/nodemesh/v1/StringMatch.js';
import type { Subset__Output } from './generated/nodemesh/v1/Subset.js';
import type { TcpRoute__Output } from './generated/nodemesh/v1/TcpRoute.js';
import type { TrafficPolicy__Output } from './generated/nodemesh/v1/TrafficPolicy.js';
import type { Refine } from './protos.js';

// ---- the known words of the few-word fields (checked when a snapshot arrives) ----------

export const STRING_MATCH_KINDS = ['exact', 'prefix', 'regex', 'present', 'pathPrefix'] as const;
export const NO_MATCH_ACTIONS = ['passthrough', 'notFound'] as const;
export const CONSISTENT_HASH_KINDS = ['header', 'cookie', 'sourceIp', 'queryParam'] as const;
/** Istio's simple policies, plus PEAK_EWMA (Linkerd's latency-aware P2C). Istio: unset = LEAST_REQUEST */
export const LOAD_BALANCER_POLICIES = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'PASSTHROUGH', 'PEAK_EWMA'] as const;

// ---- routes --------------------------------------------------------------------------

export interface StringMatch extends Refine<StringMatch__Output, 'kind'> {
  kind: (typeof STRING_MATCH_KINDS)[number];
}

export interface NamedMatch extends Refine<NamedMatch__Output, 'match'> {
  match: StringMatch;
}

export interface HttpMatch extends Refine<
  HttpMatch__Output,
  'uri' | 'method' | 'authority' | 'scheme' | 'headers' | 'withoutHeaders' | 'queryParams'
> {
  uri?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  scheme?: StringMatch;
  headers: NamedMatch[];
  withoutHeaders: NamedMatch[];
  queryParams: NamedMatch[];
}

export type HeaderOps = HeaderOps__Output;

/** Request and response header operations (not exported as `Headers`: that is fetch's). */
interface HeaderRules extends Refine<Headers__Output, 'request' | 'response'> {
  request: HeaderOps;
  response: HeaderOps;
}

export interface Destination extends Refine<Destination__Output, 'headers'> {
  headers: HeaderRules;
}

export type RetryPolicy = RetryPolicy__Output;

export interface Fault extends Refine<Fault__Output, 'delay' | 'abort'> {
  delay?: FaultDelay__Output;
  abort?: FaultAbort__Output;
}

export type Redirect = Redirect__Output;

export interface Rewrite extends Refine<Rewrite__Output, 'uriRegex'> {
  uriRegex?: RegexRewrite__Output;
}

export interface Mirror extends Refine<Mirror__Output, 'destination'> {
  destination: Destination;
}

export interface HttpRoute extends Refine<
  HttpRoute__Output,
  'match' | 'destinations' | 'redirect' | 'directResponse' | 'rewrite' | 'retries' | 'fault' | 'headers' | 'mirrors'
> {
  match: HttpMatch[];
  destinations: Destination[];
  redirect?: Redirect;
  directResponse?: DirectResponse__Output;
  rewrite?: Rewrite;
  retries: RetryPolicy;
  fault?: Fault;
  headers: HeaderRules;
  mirrors: Mirror[];
}

export interface TcpRoute extends Refine<TcpRoute__Output, 'destinations'> {
  destinations: Destination[];
}

export interface RouteTable extends Refine<RouteTable__Output, 'http' | 'tcp' | 'noMatch'> {
  http: HttpRoute[];
  tcp: TcpRoute[];
  noMatch: (typeof NO_MATCH_ACTIONS)[number];
}

// ---- destination policies -------------------------------------------------------------

export interface ConsistentHash extends Refine<ConsistentHash__Output, 'kind'> {
  kind: (typeof CONSISTENT_HASH_KINDS)[number];
}

export type LocalityLb = LocalityLb__Output;

export interface LoadBalancer extends Refine<LoadBalancer__Output, 'simple' | 'consistentHash' | 'locality'> {
  simple: (typeof LOAD_BALANCER_POLICIES)[number];
  consistentHash?: ConsistentHash;
  /** absent: the mesh default (locality failover where outlier detection is on) */
  locality?: LocalityLb;
}

export type ConnectionPool = ConnectionPool__Output;

export interface OutlierDetection extends Refine<OutlierDetection__Output, 'latencyEjection'> {
  latencyEjection?: LatencyEjection__Output;
}

export type RetryBudget = RetryBudget__Output;

export interface TrafficPolicy extends Refine<
  TrafficPolicy__Output,
  'loadBalancer' | 'connectionPool' | 'outlierDetection' | 'retryBudget'
> {
  loadBalancer: LoadBalancer;
  connectionPool: ConnectionPool;
  outlierDetection: OutlierDetection;
  retryBudget: RetryBudget;
}

export interface PortPolicy extends Refine<PortPolicy__Output, 'policy'> {
  policy: TrafficPolicy;
}

export interface Subset extends Refine<Subset__Output, 'policy' | 'ports'> {
  policy: TrafficPolicy;
  ports: PortPolicy[];
}

export interface DestinationPolicy extends Refine<DestinationPolicy__Output, 'policy' | 'ports' | 'subsets'> {
  policy: TrafficPolicy;
  ports: PortPolicy[];
  subsets: Subset[];
}

export interface RoutingConfig extends Refine<RoutingConfig__Output, 'routes' | 'destinations'> {
  routes: RouteTable[];
  destinations: DestinationPolicy[];
}

export function emptyRouting(): RoutingConfig {
  return { routes: [], destinations: [] };
}

export function emptyHeaderOps(): HeaderOps {
  return { set: {}, add: {}, remove: [] };
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
