// Checks of the security.istio.io kinds against the pods they are meant for:
// - IST0127: an AuthorizationPolicy or PeerAuthentication whose selector matches no pod of
//   its namespace (of the mesh, in the root namespace): it protects nothing, often a label typo;
// - NM0103: a PeerAuthentication port-level mode for a port that none of the pods it
//   selects listens on (Istio keys portLevelMtls by the workload's port, not the Service's);
// - NM0104: an ALLOW AuthorizationPolicy with `rules` written but empty, or with
//   `action: ALLOW` written and no rules: it matches no request, so every request to the
//   workloads it selects is denied. `spec: {}` (Istio's documented allow-nothing) and a
//   selector with nothing else say so on purpose and are not reported.
import type { Resource } from '../model/resources.js';
import { isObject, selectedPods, type AnalysisContext } from './context.js';

export function checkSecurity(ctx: AnalysisContext): void {
  for (const r of ctx.resources) {
    if (r.body.kind === 'AuthorizationPolicy') checkAuthorizationPolicy(ctx, r);
    else if (r.body.kind === 'PeerAuthentication') checkPeerAuthentication(ctx, r);
  }
}

function checkAuthorizationPolicy(ctx: AnalysisContext, r: Resource): void {
  if (r.body.kind !== 'AuthorizationPolicy') return;
  const spec = r.body.spec;
  const raw = ctx.raw(r).spec;
  const written = isObject(raw) ? raw : {};
  if (spec.selector && Object.keys(spec.selector).length > 0 && selectedPods(ctx, r.key.namespace, spec.selector).length === 0)
    ctx.report(r, 'IST0127', ['spec', 'selector', 'matchLabels'], `No matching workloads for this resource with the following labels: ${labelText(spec.selector)}`, 'correct the labels, or deploy the pods this policy is for');
  if (spec.action === 'ALLOW' && spec.rules.length === 0 && !spec.dryRun && spec.provider === '') {
    const rulesWritten = Object.prototype.hasOwnProperty.call(written, 'rules');
    if (rulesWritten || written.action === 'ALLOW')
      ctx.report(
        r,
        'NM0104',
        rulesWritten ? ['spec', 'rules'] : ['spec', 'action'],
        'an ALLOW policy without rules matches no request: every request to the workloads it selects is denied',
        'add the rules that say what to allow (a rule `{}` allows everything); if denying everything is meant, write `spec: {}` (Istio\'s allow-nothing)',
      );
  }
}

function checkPeerAuthentication(ctx: AnalysisContext, r: Resource): void {
  if (r.body.kind !== 'PeerAuthentication') return;
  const spec = r.body.spec;
  if (!spec.selector) return;
  const pods = selectedPods(ctx, r.key.namespace, spec.selector);
  if (pods.length === 0) {
    ctx.report(r, 'IST0127', ['spec', 'selector', 'matchLabels'], `No matching workloads for this resource with the following labels: ${labelText(spec.selector)}`, 'correct the labels, or deploy the pods this policy is for');
    return;
  }
  const raw = ctx.raw(r).spec;
  const portLevel = isObject(raw) && isObject(raw.portLevelMtls) ? raw.portLevelMtls : {};
  const listened = new Set(pods.flatMap((p) => p.spec.containers.flatMap((c) => c.ports.map((x) => x.containerPort))));
  // pods that declare no port at all say nothing about what they listen on
  if (listened.size === 0) return;
  for (const { port, mode } of spec.portLevelMtls) {
    if (listened.has(port) || mode === 'UNSET') continue;
    const key = Object.keys(portLevel).find((k) => Number(k) === port) ?? String(port);
    ctx.report(
      r,
      'NM0103',
      ['spec', 'portLevelMtls', key],
      `${mode} on port ${port}, which none of the ${pods.length} selected pod(s) declares as a containerPort (they declare ${[...listened].sort((a, b) => a - b).join(', ') || 'none'})`,
      'portLevelMtls is keyed by the workload\'s port (the Service\'s targetPort), not the Service port: use the port the pods listen on',
    );
  }
}

function labelText(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
