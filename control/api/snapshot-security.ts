// Security policy in the snapshot (mirrors security.proto): what Istio PeerAuthentication
// and AuthorizationPolicy compile to. The agent consumes only this.
//
// - `workloads[]`: one entry per workload of the snapshot: its effective mTLS mode (with
//   port-level overrides) as PeerAuthentication precedence resolves it, and the
//   AuthorizationPolicies that apply to it (by `namespace/name`).
// - `authorizationPolicies[]`: every AuthorizationPolicy, its rules normalised into one
//   shape: a rule is `from` (OR of clauses) AND `to` (OR of clauses) AND `when` (every
//   match); a clause is an AND of attribute matches; an attribute match holds when the
//   attribute matches one of `values` (if any) and none of `notValues`. Istio's source
//   fields, operation fields and `when` conditions all become attribute matches, so the
//   agent evaluates one structure.
//
// Every field is always set (proto3 defaults), so a snapshot round-trips the wire unchanged.

/** The mode a workload port ends up with; UNSET never reaches the agent (it is resolved). */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

/**
 * How one value is compared:
 * - exact / prefix (`abc*`) / suffix (`*abc`) / presence (`*`: any non-empty value), as
 *   Istio's "Exact, Prefix, Suffix and Presence match" (hosts case-insensitively);
 * - template: a path with Envoy URI-template operators `{*}` (one segment) and `{**}`
 *   (any number of characters including `/`), the whole path must match;
 * - cidr: an IP address or CIDR range (`value` is the network in `addr/len` form).
 */
export type MatchKind = 'exact' | 'prefix' | 'suffix' | 'presence' | 'template' | 'cidr';

export interface ValueMatch {
  kind: MatchKind;
  /** the literal part (without `*`); "" for presence */
  value: string;
}

/**
 * Attributes a policy can test. The first group is known when a connection is accepted
 * (L4); the second needs the HTTP request (see HTTP_ATTRIBUTES).
 */
export type Attribute =
  // L4: from the connection and the peer's verified identity
  | 'source.principal' // `<trust domain>/ns/<ns>/sa/<sa>` (SPIFFE ID without spiffe://)
  | 'source.namespace' // from the principal
  | 'source.serviceAccount' // `<ns>/<sa>` from the principal
  | 'source.trustDomain' // from the principal
  | 'source.ip'
  | 'remote.ip' // the original client: the same as source.ip (no trusted proxies in front)
  | 'destination.ip'
  | 'destination.port'
  | 'connection.sni' // never known to the node proxy (it does not terminate the app's TLS)
  | 'experimental.envoy.filters' // Envoy dynamic metadata: never present in nodemesh
  // HTTP
  | 'request.host'
  | 'request.method'
  | 'request.path'
  | 'request.headers'
  | 'request.auth.principal'
  | 'request.auth.audiences'
  | 'request.auth.presenter'
  | 'request.auth.claims';

/** Attributes that exist only in an HTTP request; everything else is known at accept. */
export const HTTP_ATTRIBUTES: ReadonlySet<Attribute> = new Set<Attribute>([
  'request.host',
  'request.method',
  'request.path',
  'request.headers',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'request.auth.claims',
]);

export interface AttributeMatch {
  attribute: Attribute;
  /** the bracketed part of the key: `[header]` (lowercase) of request.headers, the claim path of request.auth.claims; else empty */
  path: string[];
  /** holds if one of these matches (ignored when empty) */
  values: ValueMatch[];
  /** ... and none of these does */
  notValues: ValueMatch[];
}

/** Every match must hold (the fields of one Istio `source` or `operation`). */
export interface MatchClause {
  matches: AttributeMatch[];
}

/** from AND to AND when; an empty `from` or `to` matches anything. `rules: [{}]` matches everything. */
export interface AuthorizationRule {
  /** OR of the rule's `from[].source` */
  from: MatchClause[];
  /** OR of the rule's `to[].operation` */
  to: MatchClause[];
  /** AND of the rule's `when` conditions */
  when: AttributeMatch[];
}

export interface AuthorizationPolicy {
  namespace: string;
  name: string;
  action: AuthorizationAction;
  /** annotation istio.io/dry-run: evaluated and counted, never enforced */
  dryRun: boolean;
  /** CUSTOM: the extension provider's name (nodemesh skips CUSTOM policies) */
  provider: string;
  /** no rules: the policy never matches (an ALLOW with no rules denies everything) */
  rules: AuthorizationRule[];
}

export interface PortMtls {
  /** the workload's (container) port */
  port: number;
  mode: MtlsMode;
}

export interface WorkloadSecurity {
  /** `namespace/name` of the workload (Workload.uid) */
  workload: string;
  /** for ports not in portMtls */
  mtlsMode: MtlsMode;
  portMtls: PortMtls[];
  /** `namespace/name` of the PeerAuthentications that decided, mesh → namespace → workload */
  peerAuthentications: string[];
  /** `namespace/name` of the AuthorizationPolicies that apply, sorted */
  authorizationPolicies: string[];
  /** an enforced (ALLOW/DENY, not dry-run) policy of this workload tests HTTP attributes: the destination proxy parses HTTP */
  http: boolean;
}

export interface SecurityConfig {
  /** sorted by workload */
  workloads: WorkloadSecurity[];
  /** sorted by namespace/name */
  authorizationPolicies: AuthorizationPolicy[];
}

/** Istio's default when no PeerAuthentication says otherwise. */
export const MTLS_MODE_DEFAULT: MtlsMode = 'PERMISSIVE';

export function emptySecurity(): SecurityConfig {
  return { workloads: [], authorizationPolicies: [] };
}

/** `namespace/name` */
export function policyRef(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}

export function ruleUsesHttp(r: AuthorizationRule): boolean {
  const http = (m: AttributeMatch) => HTTP_ATTRIBUTES.has(m.attribute);
  return r.from.some((c) => c.matches.some(http)) || r.to.some((c) => c.matches.some(http)) || r.when.some(http);
}
