// The validated bodies of the traffic-management kinds: Istio VirtualService and
// DestinationRule, Gateway API HTTPRoute / TCPRoute (GAMMA) and ReferenceGrant.
// They are already in the snapshot's vocabulary (control/api/snapshot-routing.ts) with every
// per-resource default filled in; what needs the other resources (short host names, which
// Services exist, which route wins) is left to the compiler (compile/routing.ts).
import type {
  ConnectionPool,
  HeaderOps,
  HttpMatch,
  HttpRoute,
  LoadBalancer,
  OutlierDetection,
  Redirect,
  RetryBudget,
  RetryPolicy,
  Rewrite,
  TcpRoute,
} from '../api/snapshot-routing.js';

/** Header operations that change nothing: what a route without `headers` carries. */
export function emptyHeaderOps(): HeaderOps {
  return { set: {}, add: {}, remove: [] };
}

export interface VirtualServiceSpec {
  /** as written: short names are resolved in the VirtualService's namespace when compiling */
  hosts: string[];
  /** as written; [] = every namespace ("." = this namespace) */
  exportTo: string[];
  /** rules that apply to mesh traffic, in order; destination hosts as written */
  http: HttpRoute[];
  tcp: TcpRoute[];
  /** metadata.creationTimestamp (ISO) or "": the oldest VirtualService for a host wins */
  createdAt: string;
}

/**
 * TrafficPolicy groups as written. Istio merges policies a whole group at a time ("default
 * values will be applied to fields omitted in port-level traffic policies"), so each written
 * group is complete and an absent group inherits.
 */
export interface PolicyGroups {
  loadBalancer?: LoadBalancer;
  connectionPool?: ConnectionPool;
  outlierDetection?: OutlierDetection;
  retryBudget?: RetryBudget;
}

export interface PortGroups {
  port: number;
  groups: PolicyGroups;
}

export interface DestinationRuleSpec {
  /** as written (short name, FQDN or `*.suffix`) */
  host: string;
  exportTo: string[];
  policy: PolicyGroups;
  ports: PortGroups[];
  subsets: { name: string; labels: Record<string, string>; policy: PolicyGroups; ports: PortGroups[] }[];
  /** spec.workloadSelector is set: not applied (nodemesh has no per-caller DestinationRules yet) */
  workloadSelector: boolean;
  createdAt: string;
}

/** A parentRef / backendRef as written; namespace "" = the route's own. */
export interface ObjectRef {
  group: string;
  kind: string;
  namespace: string;
  name: string;
  /** 0 = not set */
  port: number;
}

export interface ParentRef extends ObjectRef {
  /** GAMMA: the Service port name; "" = all ports */
  sectionName: string;
}

export interface BackendRef extends ObjectRef {
  weight: number;
  /** RequestHeaderModifier / ResponseHeaderModifier filters on the backendRef */
  headers: { request: HeaderOps; response: HeaderOps };
}

/** One rule of an HTTPRoute. */
export interface GatewayRule {
  /** position in spec.rules: precedence ties go to the first rule */
  index: number;
  name: string;
  /** never empty: Gateway API defaults a rule's matches to `PathPrefix /` */
  matches: HttpMatch[];
  backendRefs: BackendRef[];
  headers: { request: HeaderOps; response: HeaderOps };
  redirect?: Redirect;
  rewrite?: Rewrite;
  mirrors: { backend: ObjectRef; percentage: number }[];
  timeoutMs: number;
  retries: RetryPolicy;
}

export interface GatewayRouteSpec {
  parentRefs: ParentRef[];
  rules: GatewayRule[];
  createdAt: string;
}

export interface TcpRouteSpec {
  parentRefs: ParentRef[];
  rules: { backendRefs: BackendRef[] }[];
  createdAt: string;
}

export interface ReferenceGrantSpec {
  from: { group: string; kind: string; namespace: string }[];
  /** name "" = every object of that kind */
  to: { group: string; kind: string; name: string }[];
}

export type RoutingBody =
  | { kind: 'VirtualService'; spec: VirtualServiceSpec }
  | { kind: 'DestinationRule'; spec: DestinationRuleSpec }
  | { kind: 'HTTPRoute'; spec: GatewayRouteSpec }
  | { kind: 'TCPRoute'; spec: TcpRouteSpec }
  | { kind: 'ReferenceGrant'; spec: ReferenceGrantSpec };
