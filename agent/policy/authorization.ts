// AuthorizationPolicy evaluation with Istio's semantics, on the snapshot's normalised
// policies (control/api/snapshot-security.ts), compiled once per snapshot into a
// SecurityIndex. The order is the proto's:
//   1. "If there are any CUSTOM policies that match the request, evaluate and deny the
//      request if the evaluation result is deny." — nodemesh has no ext-authz: CUSTOM
//      policies are skipped (the control plane says so in the policy's status).
//   2. "If there are any DENY policies that match the request, deny the request."
//   3. "If there are no ALLOW policies for the workload, allow the request."
//   4. "If any of the ALLOW policies match the request, allow the request."
//   5. "Deny the request."
// "AUDIT policies do not affect whether requests are allowed or denied"; neither do
// dry-run policies (annotation istio.io/dry-run). Both are evaluated and reported.
//
// Matching: "A match occurs when at least one rule matches the request"; "If not set, the
// match will never occur" (no rules); a rule matches when "at least one source, one
// operation and all conditions" match ("An empty rule is always matched"); "Fields in the
// source are ANDed together", likewise in the operation.
//
// Three ways to evaluate a connection or request:
// - request: every attribute is known (the destination proxy parsed the HTTP request);
// - tcp: a byte stream, HTTP attributes cannot be known. As Istio builds its TCP filter:
//   "For a DENY rule, missing attributes are treated as matches" (each HTTP-only field is
//   dropped, so the deny is wider) while an ALLOW rule with any HTTP field is dropped
//   whole ("a smaller allow policy, i.e. less likely to allow");
// - deferred: at stream accept for a workload whose policies test HTTP attributes and
//   whose stream will be parsed: HTTP-dependent parts are left undecided; the connection
//   is refused only if no request on it could be allowed, else every request is evaluated.
import { logger } from '../../common/log.js';
import {
  HTTP_ATTRIBUTES,
  MTLS_MODE_DEFAULT,
  policyRef,
  ruleUsesHttp,
  type AttributeMatch,
  type AuthorizationPolicy,
  type AuthorizationRule,
  type MtlsMode,
  type SecurityConfig,
} from '../../control/api/snapshot-security.js';
import {
  compileValues,
  normalizePath,
  principalParts,
  toPrincipal,
  type AttributeValue,
  type ValuePredicate,
} from './authorization-match.js';

const log = logger('agent/authorization');

/** What is known when a connection is accepted. */
export interface L4Attributes {
  /** the peer's verified identity (SPIFFE ID, with or without spiffe://); only with mTLS */
  sourcePrincipal?: string;
  sourceIp: string;
  /** the destination pod's IP */
  destinationIp?: string;
  /** the destination pod's port */
  destinationPort: number;
  /** the connection arrived over mTLS (HBONE); a principal counts only then */
  mtls: boolean;
}

/** One HTTP request, as the destination proxy parsed it. */
export interface HttpAttributes {
  method: string;
  /** the request target as received (normalised here before it is compared) */
  path: string;
  /** :authority / Host */
  host: string;
  /** lowercase names; repeated headers as arrays */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

export type Decision = 'allow' | 'deny';

export interface AuthorizationResult {
  decision: Decision;
  /** the DENY policy that matched, or the ALLOW policy that allowed (`namespace/name`) */
  policy?: string;
  /** why: a DENY matched, ALLOW policies exist and none matched, an ALLOW matched, no ALLOW policies */
  reason: 'deny-policy' | 'no-allow-match' | 'allow-policy' | 'no-allow-policy';
  /** AUDIT policies that matched (`namespace/name`) */
  audited: string[];
  /** dry-run policies that matched */
  dryRunMatched: string[];
}

export interface ConnectionResult extends AuthorizationResult {
  /** the decision depends on HTTP requests: parse the stream and call authorizeRequest for each */
  needsL7: boolean;
}

// --- compiled form -----------------------------------------------------------------------

/** Evaluation context: L4 attributes with the principal's parts resolved once, and the request if any. */
interface Attrs {
  principal: string | undefined;
  parts: ReturnType<typeof principalParts>;
  l4: L4Attributes;
  http: (HttpAttributes & { normalizedPath: string }) | undefined;
}

interface CompiledMatch {
  http: boolean;
  get: (a: Attrs) => AttributeValue;
  values: ValuePredicate | undefined;
  notValues: ValuePredicate | undefined;
}

interface CompiledRule {
  http: boolean;
  from: CompiledMatch[][];
  to: CompiledMatch[][];
  when: CompiledMatch[];
}

export interface CompiledPolicy {
  ref: string;
  action: AuthorizationPolicy['action'];
  dryRun: boolean;
  rules: CompiledRule[];
}

/** Everything the inbound path needs about one local workload. */
export interface WorkloadPolicy {
  workload: string;
  mtlsMode: MtlsMode;
  portMtls: ReadonlyMap<number, MtlsMode>;
  /** the PeerAuthentications that decided the mode (`namespace/name`), for messages */
  peerAuthentications: readonly string[];
  /** the stream must be parsed as HTTP for the decision (an enforced policy tests HTTP attributes) */
  http: boolean;
  deny: CompiledPolicy[];
  allow: CompiledPolicy[];
  audit: CompiledPolicy[];
  /** dry-run ALLOW/DENY policies */
  dryRun: CompiledPolicy[];
  /** CUSTOM policies (skipped) */
  custom: string[];
}

const NO_POLICY: Omit<WorkloadPolicy, 'workload'> = {
  mtlsMode: MTLS_MODE_DEFAULT,
  portMtls: new Map(),
  peerAuthentications: [],
  http: false,
  deny: [],
  allow: [],
  audit: [],
  dryRun: [],
  custom: [],
};

/** The security section of one snapshot, compiled for lookups by workload. */
export class SecurityIndex {
  private readonly byWorkload = new Map<string, WorkloadPolicy>();

  /** Compiles a security section; the agent does it once per snapshot (state/proxy-state.ts). */
  static of(config: SecurityConfig): SecurityIndex {
    return new SecurityIndex(config);
  }

  static empty(): SecurityIndex {
    return new SecurityIndex({ workloads: [], authorizationPolicies: [] });
  }

  private constructor(config: SecurityConfig) {
    const policies = new Map(config.authorizationPolicies.map((p) => [policyRef(p), compilePolicy(p)]));
    for (const w of config.workloads) {
      const wp: WorkloadPolicy = {
        workload: w.workload,
        mtlsMode: w.mtlsMode,
        portMtls: new Map(w.portMtls.map((p) => [p.port, p.mode])),
        peerAuthentications: w.peerAuthentications,
        http: w.http,
        deny: [],
        allow: [],
        audit: [],
        dryRun: [],
        custom: [],
      };
      for (const ref of w.authorizationPolicies) {
        let p = policies.get(ref);
        if (!p) {
          // an inconsistent snapshot: fail closed (an ALLOW with no rules denies everything)
          log.error(
            { workload: w.workload, policy: ref },
            'snapshot names an AuthorizationPolicy it does not carry; denying all traffic to the workload',
          );
          p = { ref, action: 'ALLOW', dryRun: false, rules: [] };
        }
        if (p.action === 'CUSTOM') wp.custom.push(p.ref);
        else if (p.dryRun) wp.dryRun.push(p);
        else if (p.action === 'DENY') wp.deny.push(p);
        else if (p.action === 'ALLOW') wp.allow.push(p);
        else wp.audit.push(p);
      }
      this.byWorkload.set(w.workload, wp);
    }
  }

  /** The policy of a workload (`namespace/name`); a workload the snapshot does not list has none (PERMISSIVE, allow). */
  forWorkload(uid: string): WorkloadPolicy {
    return this.byWorkload.get(uid) ?? { workload: uid, ...NO_POLICY };
  }
}

export function compilePolicy(p: AuthorizationPolicy): CompiledPolicy {
  return { ref: policyRef(p), action: p.action, dryRun: p.dryRun, rules: p.rules.map(compileRule) };
}

function compileRule(r: AuthorizationRule): CompiledRule {
  return {
    http: ruleUsesHttp(r),
    from: r.from.map((c) => c.matches.map(compileMatch)),
    to: r.to.map((c) => c.matches.map(compileMatch)),
    when: r.when.map(compileMatch),
  };
}

function compileMatch(m: AttributeMatch): CompiledMatch {
  return {
    http: HTTP_ATTRIBUTES.has(m.attribute),
    get: getter(m),
    values: compileValues(m.values, m.attribute),
    notValues: compileValues(m.notValues, m.attribute),
  };
}

function getter(m: AttributeMatch): (a: Attrs) => AttributeValue {
  switch (m.attribute) {
    case 'source.principal':
      return (a) => a.principal;
    case 'source.namespace':
      return (a) => a.parts?.namespace;
    case 'source.serviceAccount':
      return (a) => (a.parts ? `${a.parts.namespace}/${a.parts.serviceAccount}` : undefined);
    case 'source.trustDomain':
      return (a) => a.parts?.trustDomain;
    case 'source.ip':
    case 'remote.ip':
      return (a) => a.l4.sourceIp;
    case 'destination.ip':
      return (a) => a.l4.destinationIp;
    case 'destination.port':
      return (a) => String(a.l4.destinationPort);
    case 'request.host':
      return (a) => a.http?.host;
    case 'request.method':
      return (a) => a.http?.method;
    case 'request.path':
      return (a) => a.http?.normalizedPath;
    case 'request.headers': {
      const name = (m.path[0] ?? '').toLowerCase();
      return (a) => a.http?.headers[name];
    }
    default:
      // connection.sni, Envoy metadata, JWT attributes: never known to nodemesh
      return () => undefined;
  }
}

// --- evaluation ------------------------------------------------------------------------------

const F = 0;
const T = 1;
const U = 2; // depends on the HTTP request, which is not known yet
type Tri = typeof F | typeof T | typeof U;

function evalMatch(m: CompiledMatch, a: Attrs): Tri {
  if (m.http && !a.http) return U;
  const v = m.get(a);
  if (m.values && (v === undefined || !m.values(v))) return F;
  if (m.notValues && v !== undefined && m.notValues(v)) return F;
  return T;
}

function all(ms: readonly CompiledMatch[], a: Attrs): Tri {
  let r: Tri = T;
  for (const m of ms) {
    const x = evalMatch(m, a);
    if (x === F) return F;
    if (x === U) r = U;
  }
  return r;
}

/** OR of clauses; no clause = anything. */
function any(clauses: readonly CompiledMatch[][], a: Attrs): Tri {
  if (clauses.length === 0) return T;
  let r: Tri = F;
  for (const c of clauses) {
    const x = all(c, a);
    if (x === T) return T;
    if (x === U) r = U;
  }
  return r;
}

function evalRule(r: CompiledRule, a: Attrs): Tri {
  const parts = [any(r.from, a), any(r.to, a), all(r.when, a)];
  if (parts.includes(F)) return F;
  return parts.includes(U) ? U : T;
}

type Mode = 'request' | 'tcp' | 'deferred';

function evalPolicy(p: CompiledPolicy, a: Attrs, mode: Mode): Tri {
  let r: Tri = F;
  for (const rule of p.rules) {
    let x: Tri;
    // TCP: "an ALLOW rule with HTTP-only fields is ignored" (never matches)
    if (mode === 'tcp' && p.action === 'ALLOW' && rule.http) x = F;
    else x = evalRule(rule, a);
    // TCP: for DENY (and AUDIT) "missing attributes are treated as matches"
    if (x === U && mode === 'tcp') x = T;
    if (x === T) return T;
    if (x === U) r = U;
  }
  return r;
}

/**
 * Whether any AuthorizationPolicy that is evaluated (DENY, ALLOW, AUDIT, dry-run; CUSTOM is
 * skipped) selects the workload. Without one every request is allowed and nothing observed.
 */
export function hasRules(p: WorkloadPolicy): boolean {
  return p.deny.length + p.allow.length + p.audit.length + p.dryRun.length > 0;
}

/**
 * What a workload without AuthorizationPolicies answers every request (decide() gives the same
 * for an empty policy): one frozen object, so a request on such a workload (a port declared
 * HTTP, parsed for its telemetry) builds no attributes for nothing to test.
 */
export const ALLOWED_WITHOUT_POLICY: AuthorizationResult = Object.freeze({
  decision: 'allow',
  reason: 'no-allow-policy',
  audited: Object.freeze([]) as unknown as string[],
  dryRunMatched: Object.freeze([]) as unknown as string[],
});

// the parts of the few principals a node sees, parsed once (bounded: cleared when full)
const principalPartsCache = new Map<string, ReturnType<typeof principalParts>>();

function cachedPrincipalParts(principal: string): ReturnType<typeof principalParts> {
  let parts = principalPartsCache.get(principal);
  if (parts === undefined && !principalPartsCache.has(principal)) {
    if (principalPartsCache.size >= 1024) principalPartsCache.clear();
    parts = principalParts(principal);
    principalPartsCache.set(principal, parts && Object.freeze(parts));
  }
  return parts;
}

function attrs(l4: L4Attributes, http?: HttpAttributes, normalizedPath?: string): Attrs {
  const principal = l4.mtls && l4.sourcePrincipal ? toPrincipal(l4.sourcePrincipal) : undefined;
  return {
    principal,
    parts: principal ? cachedPrincipalParts(principal) : undefined,
    l4,
    http: http ? { ...http, normalizedPath: normalizedPath ?? http.path } : undefined,
  };
}

function decide(p: WorkloadPolicy, a: Attrs, mode: Mode): AuthorizationResult & { pending: boolean } {
  const observed = (list: CompiledPolicy[]) =>
    mode === 'deferred' ? [] : list.filter((x) => evalPolicy(x, a, mode) === T).map((x) => x.ref);
  const base = { audited: observed(p.audit), dryRunMatched: observed(p.dryRun) };
  let pending = false;
  // "If there are any DENY policies that match the request, deny the request."
  for (const d of p.deny) {
    const x = evalPolicy(d, a, mode);
    if (x === T) return { decision: 'deny', policy: d.ref, reason: 'deny-policy', ...base, pending: false };
    if (x === U) pending = true;
  }
  // "If there are no ALLOW policies for the workload, allow the request."
  if (p.allow.length === 0) return { decision: 'allow', reason: 'no-allow-policy', ...base, pending };
  // "If any of the ALLOW policies match the request, allow the request."
  let allowPending = false;
  for (const al of p.allow) {
    const x = evalPolicy(al, a, mode);
    if (x === T) return { decision: 'allow', policy: al.ref, reason: 'allow-policy', ...base, pending };
    if (x === U) allowPending = true;
  }
  // "Deny the request." (in deferred mode only when no request could be allowed either)
  if (allowPending) return { decision: 'allow', reason: 'allow-policy', ...base, pending: true };
  return { decision: 'deny', reason: 'no-allow-match', ...base, pending: false };
}

/**
 * At stream accept. When the workload's policies test HTTP attributes (`policy.http`) and
 * the stream is to be parsed (`protocol` 'auto', the default), HTTP-dependent rules are
 * deferred: `needsL7` says the caller must evaluate every request with authorizeRequest.
 * `protocol: 'tcp'` evaluates a stream that is not HTTP (fail-safe for HTTP fields).
 */
export function authorizeConnection(policy: WorkloadPolicy, l4: L4Attributes, opts: { protocol?: 'auto' | 'tcp' } = {}): ConnectionResult {
  const mode: Mode = policy.http && opts.protocol !== 'tcp' ? 'deferred' : 'tcp';
  const a = attrs(l4);
  const r = decide(policy, a, mode);
  const needsL7 = r.decision === 'allow' && r.pending;
  const { pending: _pending, ...result } = r;
  if (mode === 'deferred' && !needsL7) {
    // decided at L4 after all: nothing per request will be evaluated, so report AUDIT and dry-run now
    const tcp = decide(policy, a, 'tcp');
    return { ...result, audited: tcp.audited, dryRunMatched: tcp.dryRunMatched, needsL7 };
  }
  if (needsL7) return { decision: 'allow', reason: result.reason, audited: [], dryRunMatched: [], needsL7 };
  return { ...result, needsL7 };
}

/** One HTTP request on a connection that authorizeConnection allowed with needsL7. */
export function authorizeRequest(policy: WorkloadPolicy, l4: L4Attributes, http: HttpAttributes): AuthorizationResult {
  if (!hasRules(policy)) return ALLOWED_WITHOUT_POLICY;
  const normalized = normalizePath(http.path);
  const a = attrs(l4, http, normalized?.path ?? http.path);
  const { pending: _pending, ...result } = decide(policy, a, 'request');
  return result;
}
