// PeerAuthentication and AuthorizationPolicy → SecurityConfig: per workload, the effective
// mTLS mode (with port-level overrides) and the AuthorizationPolicies that apply to it.
//
// PeerAuthentication precedence, as Istio resolves it (pilot/pkg/model/authentication.go,
// pilot/pkg/serviceregistry/ambient/authorization.go):
// - scope: in the root namespace without a selector = mesh; elsewhere without a selector =
//   that namespace; with a selector = the workloads it selects in its namespace. "selectors
//   are ignored in the root namespace": a root-namespace policy with a selector applies to
//   nothing. An empty matchLabels is no selector.
// - several candidates at one level: the oldest wins (creationTimestamp, then name, then
//   namespace); "Namespace/mesh-level PeerAuthentication is already defined ... Ignore"
//   the newer ones.
// - mode: PERMISSIVE, then the mesh's mode, the namespace's, the workload's, each unless
//   UNSET ("UNSET is treated as permissive for mesh-policy"; below it inherits); a port in
//   portLevelMtls takes its own mode, or the workload's effective mode when UNSET.
//
// AuthorizationPolicy scope: "The selector will match with workloads in the same
// namespace as the authorization policy. If the authorization policy is in the root
// namespace, the selector will additionally match with workloads in all namespaces."
// No selector: every workload of the namespace (of the mesh, in the root namespace). With
// targetRefs, only through them: a Service (in the policy's namespace) applies the policy
// to the pods behind it; gateway kinds apply it to nothing (nodemesh has no gateways).
import type { Workload } from '../api/snapshot.js';
import {
  MTLS_MODE_DEFAULT,
  policyRef,
  ruleUsesHttp,
  type AuthorizationPolicy,
  type MtlsMode,
  type SecurityConfig,
  type WorkloadSecurity,
} from '../api/snapshot-security.js';
import { expandPrincipals } from './trust-domains.js';
import type { CompileContext } from './context.js';
import type { AuthorizationPolicySpec, MtlsModeSpec, PeerAuthenticationSpec } from '../model/security.js';
import { selectsLabels, type Resource } from '../model/resources.js';

interface Named<S> {
  namespace: string;
  name: string;
  spec: S;
}

export function compileSecurity(resources: readonly Resource[], ctx: CompileContext): SecurityConfig {
  const peer: Named<PeerAuthenticationSpec>[] = [];
  const authz: Named<AuthorizationPolicySpec>[] = [];
  for (const r of resources) {
    const { namespace, name } = r.key;
    if (r.body.kind === 'PeerAuthentication') peer.push({ namespace, name, spec: r.body.spec });
    else if (r.body.kind === 'AuthorizationPolicy') authz.push({ namespace, name, spec: r.body.spec });
  }
  peer.sort(oldestFirst);
  authz.sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name));

  const backends = serviceBackends(ctx);
  const policies: AuthorizationPolicy[] = authz.map((p) => ({
    namespace: p.namespace,
    name: p.name,
    action: p.spec.action,
    dryRun: p.spec.dryRun,
    provider: p.spec.provider,
    // principals of the mesh's trust domain stand for its aliases too (trust-domains.ts)
    rules: expandPrincipals(p.spec.rules, ctx.trustDomains ?? []),
  }));
  const workloads: WorkloadSecurity[] = [...ctx.workloads]
    .sort((a, b) => cmp(a.uid, b.uid))
    .map((w) => {
      const applied = authz.filter((p) => authorizationApplies(p, w, ctx.rootNamespace, backends));
      const enforcedHttp = applied.some(
        (p) => (p.spec.action === 'ALLOW' || p.spec.action === 'DENY') && !p.spec.dryRun && p.spec.rules.some(ruleUsesHttp),
      );
      return {
        workload: w.uid,
        ...effectiveMtls(peer, w, ctx.rootNamespace),
        authorizationPolicies: applied.map(policyRef),
        http: enforcedHttp,
      };
    });
  return { workloads, authorizationPolicies: policies };
}

/** The mTLS mode of a workload and its port overrides, and the PeerAuthentications that decided. */
export function effectiveMtls(
  peer: readonly Named<PeerAuthenticationSpec>[],
  w: Pick<Workload, 'namespace' | 'labels'>,
  rootNamespace: string,
): Pick<WorkloadSecurity, 'mtlsMode' | 'portMtls' | 'peerAuthentications'> {
  // `peer` is sorted oldest first, so the first candidate of each level wins
  const mesh = peer.find((p) => p.namespace === rootNamespace && !p.spec.selector);
  const ns = w.namespace === rootNamespace ? undefined : peer.find((p) => p.namespace === w.namespace && !p.spec.selector);
  const workload =
    w.namespace === rootNamespace
      ? undefined
      : peer.find((p) => p.namespace === w.namespace && p.spec.selector && selectsLabels(p.spec.selector, w.labels));
  let mode: MtlsMode = MTLS_MODE_DEFAULT;
  const decided: string[] = [];
  for (const level of [mesh, ns, workload]) {
    if (!level) continue;
    decided.push(policyRef(level));
    mode = resolve(level.spec.mode, mode);
  }
  const portMtls = (workload?.spec.portLevelMtls ?? []).map((p) => ({ port: p.port, mode: resolve(p.mode, mode) }));
  return { mtlsMode: mode, portMtls, peerAuthentications: decided };
}

function resolve(spec: MtlsModeSpec, inherited: MtlsMode): MtlsMode {
  return spec === 'UNSET' ? inherited : spec;
}

function authorizationApplies(
  p: Named<AuthorizationPolicySpec>,
  w: Workload,
  rootNamespace: string,
  backends: Map<string, Set<string>>,
): boolean {
  if (p.spec.targetRefs.length > 0) {
    // a Service reference: the pods behind that Service (the reference is in the policy's namespace)
    return p.spec.targetRefs.some((t) => t.kind === 'Service' && t.group === '' && backends.get(`${p.namespace}/${t.name}`)?.has(w.uid));
  }
  if (p.namespace !== w.namespace && p.namespace !== rootNamespace) return false;
  return !p.spec.selector || selectsLabels(p.spec.selector, w.labels);
}

/** Service `ns/name` → uids of the workloads that are its endpoints. */
function serviceBackends(ctx: CompileContext): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of ctx.services) {
    const set = new Set<string>();
    for (const p of s.ports) for (const e of p.endpoints) set.add(e.workload);
    out.set(`${s.namespace}/${s.name}`, set);
  }
  return out;
}

/** "sorts the list of config objects in ascending order by their creation time", then name, then namespace. */
function oldestFirst(a: Named<PeerAuthenticationSpec>, b: Named<PeerAuthenticationSpec>): number {
  return a.spec.createdAt - b.spec.createdAt || cmp(a.name, b.name) || cmp(a.namespace, b.namespace);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
