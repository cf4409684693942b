// Security policy in the snapshot: what Istio PeerAuthentication and AuthorizationPolicy
// compile to. security.proto defines and documents every message (how Istio's rules are
// normalised into one shape); the types here derive from the generated ones, narrowed as
// snapshot.ts explains: the few-word fields to their known words.
import type { AttributeMatch__Output } from './generated/nodemesh/v1/AttributeMatch.js';
import type { AuthorizationPolicy__Output } from './generated/nodemesh/v1/AuthorizationPolicy.js';
import type { AuthorizationRule__Output } from './generated/nodemesh/v1/AuthorizationRule.js';
import type { MatchClause__Output } from './generated/nodemesh/v1/MatchClause.js';
import type { PortMtls__Output } from './generated/nodemesh/v1/PortMtls.js';
import type { SecurityConfig__Output } from './generated/nodemesh/v1/SecurityConfig.js';
import type { ValueMatch__Output } from './generated/nodemesh/v1/ValueMatch.js';
import type { WorkloadSecurity__Output } from './generated/nodemesh/v1/WorkloadSecurity.js';
import type { Refine } from './protos.js';

/** The modes a workload port ends up with; UNSET never reaches the agent (it is resolved). */
export const MTLS_MODES = ['STRICT', 'PERMISSIVE', 'DISABLE'] as const;
export type MtlsMode = (typeof MTLS_MODES)[number];

export const AUTHORIZATION_ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;
export type AuthorizationAction = (typeof AUTHORIZATION_ACTIONS)[number];

/** How one value is compared (security.proto's ValueMatch says how each works). */
export const MATCH_KINDS = ['exact', 'prefix', 'suffix', 'presence', 'template', 'cidr'] as const;
export type MatchKind = (typeof MATCH_KINDS)[number];

/** Attributes known when a connection is accepted: from the connection and the peer's verified identity. */
const CONNECTION_ATTRIBUTES = [
  'source.principal', // `<trust domain>/ns/<ns>/sa/<sa>` (SPIFFE ID without spiffe://)
  'source.namespace', // from the principal
  'source.serviceAccount', // `<ns>/<sa>` from the principal
  'source.trustDomain', // from the principal
  'source.ip',
  'remote.ip', // the original client: the same as source.ip (no trusted proxies in front)
  'destination.ip',
  'destination.port',
  'connection.sni', // never known to the node proxy (it does not terminate the app's TLS)
  'experimental.envoy.filters', // Envoy dynamic metadata: never present in nodemesh
] as const;

/** Attributes that exist only in an HTTP request. */
const REQUEST_ATTRIBUTES = [
  'request.host',
  'request.method',
  'request.path',
  'request.headers',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'request.auth.claims',
] as const;

/** Attributes a policy can test. */
export const ATTRIBUTES = [...CONNECTION_ATTRIBUTES, ...REQUEST_ATTRIBUTES] as const;
export type Attribute = (typeof ATTRIBUTES)[number];

/** Attributes that exist only in an HTTP request; everything else is known at accept. */
export const HTTP_ATTRIBUTES: ReadonlySet<Attribute> = new Set<Attribute>(REQUEST_ATTRIBUTES);

export interface ValueMatch extends Refine<ValueMatch__Output, 'kind'> {
  kind: MatchKind;
}

export interface AttributeMatch extends Refine<AttributeMatch__Output, 'attribute' | 'values' | 'notValues'> {
  attribute: Attribute;
  values: ValueMatch[];
  notValues: ValueMatch[];
}

export interface MatchClause extends Refine<MatchClause__Output, 'matches'> {
  matches: AttributeMatch[];
}

export interface AuthorizationRule extends Refine<AuthorizationRule__Output, 'from' | 'to' | 'when'> {
  from: MatchClause[];
  to: MatchClause[];
  when: AttributeMatch[];
}

export interface AuthorizationPolicy extends Refine<AuthorizationPolicy__Output, 'action' | 'rules'> {
  action: AuthorizationAction;
  rules: AuthorizationRule[];
}

export interface PortMtls extends Refine<PortMtls__Output, 'mode'> {
  mode: MtlsMode;
}

export interface WorkloadSecurity extends Refine<WorkloadSecurity__Output, 'mtlsMode' | 'portMtls'> {
  mtlsMode: MtlsMode;
  portMtls: PortMtls[];
}

export interface SecurityConfig extends Refine<SecurityConfig__Output, 'workloads' | 'authorizationPolicies'> {
  workloads: WorkloadSecurity[];
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
