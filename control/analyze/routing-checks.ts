// Cross-resource checks of the traffic-management kinds, each a mistake that makes requests
// fail or a rule silently not apply:
// - IST0101: a VirtualService route (or mirror) to a host that is no Service, or to a subset
//   no DestinationRule of that host defines (Istio's destinationhost and
//   destinationrule-subset analyzers); an HTTPRoute backendRef to a Service that does not exist;
// - NM0106: a route to a subset that exists but selects no pod (traffic fails, 503 UH);
// - IST0173 / IST0174: a DestinationRule subset that selects no pod of its Service (Istio
//   merges the Service's selector with the subset's labels) / a host that is no Service;
// - IST0109: two VirtualServices bound to the mesh naming one host that the same callers
//   see (exportTo): only the oldest applies, as in Istio ("no merging for mesh");
// - IST0130 / IST0131: an http rule after one that matches every request / a match that
//   repeats an earlier rule's (compared as written, ignoring `name`, as Istio does);
// - NM0101: a VirtualService route whose weights do not sum to 100 (Istio no longer refuses
//   it and nodemesh splits in proportion, but 70 + 20 is almost always a typo);
// - NM0102: a VirtualService host or an HTTPRoute/TCPRoute parent Service that resolves to
//   no Service: nothing is applied for it;
// - IST0128 / IST0129: DestinationRule TLS SIMPLE or MUTUAL without caCertificates.
// Only what applies to mesh traffic is looked at: a VirtualService bound only to gateways is
// not applied by nodemesh at all (its status says so).
import type { Resource } from '../model/resources.js';
import { formatFieldPath, type FieldPath } from '../model/source-document.js';
import { selectedPods, serviceOfHost, servicesOf, isObject, list, type AnalysisContext } from './context.js';

interface MeshVs {
  r: Resource;
  spec: Record<string, unknown>;
  audience: '*' | Set<string>;
}

export function checkRouting(ctx: AnalysisContext): void {
  const subsets = subsetsByHost(ctx);
  const meshVs: MeshVs[] = [];
  for (const r of ctx.resources) {
    if (r.body.kind === 'VirtualService') {
      const spec = specOf(ctx, r);
      const gateways = list(spec.gateways);
      if (gateways.length > 0 && !gateways.includes('mesh')) continue;
      const exportTo = list(spec.exportTo).map(String);
      meshVs.push({ r, spec, audience: exportTo.length === 0 || exportTo.includes('*') ? '*' : new Set(exportTo.map((e) => (e === '.' ? r.key.namespace : e))) });
      checkVirtualService(ctx, r, spec, subsets);
    } else if (r.body.kind === 'DestinationRule' && !r.body.spec.workloadSelector) checkDestinationRule(ctx, r, specOf(ctx, r));
    else if (r.body.kind === 'HTTPRoute' || r.body.kind === 'TCPRoute') checkGatewayRoute(ctx, r, specOf(ctx, r));
  }
  checkConflictingHosts(ctx, meshVs);
}

function specOf(ctx: AnalysisContext, r: Resource): Record<string, unknown> {
  const s = ctx.raw(r).spec;
  return isObject(s) ? s : {};
}

/** hostname → subset name → its pods' selector (the Service's selector merged with the subset's labels; undefined: no selector to judge). */
function subsetsByHost(ctx: AnalysisContext): Map<string, Map<string, { labels: Record<string, string>; selects: boolean | undefined }>> {
  const out = new Map<string, Map<string, { labels: Record<string, string>; selects: boolean | undefined }>>();
  for (const r of ctx.resources) {
    if (r.body.kind !== 'DestinationRule' || r.body.spec.workloadSelector) continue;
    const { covered } = servicesOf(ctx, r.body.spec.host, r.key.namespace);
    for (const host of covered) {
      const m = out.get(host) ?? new Map();
      const svc = serviceOfHost(ctx, host);
      for (const s of r.body.spec.subsets) {
        if (m.has(s.name)) continue;
        const selects = svc?.spec.selector ? selectedPods(ctx, svc.r.key.namespace, { ...svc.spec.selector, ...s.labels }).length > 0 : undefined;
        m.set(s.name, { labels: s.labels, selects });
      }
      out.set(host, m);
    }
  }
  return out;
}

function checkVirtualService(ctx: AnalysisContext, r: Resource, spec: Record<string, unknown>, subsets: ReturnType<typeof subsetsByHost>): void {
  const ns = r.key.namespace;
  list(spec.hosts).forEach((h, i) => {
    if (typeof h !== 'string') return;
    const { resolved, covered } = servicesOf(ctx, h, ns);
    if (covered.length === 0)
      ctx.report(r, 'NM0102', ['spec', 'hosts', i], `host ${resolved} resolves to no Service: nothing is applied for it`, hostFix(ctx, h, resolved));
  });

  const destination = (d: unknown, path: FieldPath) => {
    if (!isObject(d) || typeof d.host !== 'string') return;
    const { resolved, covered } = servicesOf(ctx, d.host, ns);
    if (covered.length === 0) {
      ctx.report(r, 'IST0101', [...path, 'host'], `Referenced host not found: ${resolved}; requests routed here fail (503)`, hostFix(ctx, d.host, resolved));
      return;
    }
    if (typeof d.subset !== 'string' || d.subset === '') return;
    const defined = subsets.get(covered[0]!)?.get(d.subset);
    if (!defined) {
      const known = [...(subsets.get(covered[0]!)?.keys() ?? [])];
      ctx.report(
        r,
        'IST0101',
        [...path, 'subset'],
        `Referenced host+subset in DestinationRule not found: ${resolved}+${d.subset}; requests routed here fail (503 NC)`,
        known.length > 0
          ? `use one of the subsets the DestinationRules of ${resolved} define (${known.join(', ')}), or add subset ${d.subset} to one of them`
          : `add a DestinationRule for ${resolved} with a subset named ${d.subset} (labels selecting its pods), or route without a subset`,
      );
    } else if (defined.selects === false) {
      ctx.report(
        r,
        'NM0106',
        [...path, 'subset'],
        `subset ${d.subset} of ${resolved} selects no pod (labels ${labelText(defined.labels)}): requests routed here fail (503 UH)`,
        `deploy the pods the subset is for, or correct its labels in the DestinationRule, or route elsewhere`,
      );
    }
  };
  const weights = (route: unknown[], path: FieldPath) => {
    if (route.length < 2) return;
    const ws = route.map((d) => (isObject(d) && typeof d.weight === 'number' ? d.weight : 0));
    const sum = ws.reduce((a, b) => a + b, 0);
    if (sum === 100 || sum === 0) return;
    const shares = ws.map((w) => `${Math.round((w / sum) * 1000) / 10}%`).join(' / ');
    ctx.report(r, 'NM0101', path, `the weights sum to ${sum}, not 100: traffic is split in proportion (${shares})`, `make the weights of ${formatFieldPath(path)} add up to 100`);
  };

  const http = list(spec.http);
  let catchAll: number | undefined;
  const seen: { rule: number; match: number; key: string }[] = [];
  http.forEach((rule, i) => {
    if (!isObject(rule)) return;
    const at: FieldPath = ['spec', 'http', i];
    const route = list(rule.route);
    route.forEach((d, j) => isObject(d) && destination(d.destination, [...at, 'route', j, 'destination']));
    if (isObject(rule.mirror)) destination(rule.mirror, [...at, 'mirror']);
    list(rule.mirrors).forEach((m, j) => isObject(m) && destination(m.destination, [...at, 'mirrors', j, 'destination']));
    weights(route, [...at, 'route']);

    if (catchAll !== undefined) {
      ctx.report(r, 'IST0130', at, `VirtualService rule #${i} not used (rule #${catchAll} before it matches every request)`, `move rule #${catchAll} last, or give it a match`);
      return;
    }
    const matches = list(rule.match);
    if (matches.length === 0) catchAll = i;
    matches.forEach((m, j) => {
      const key = canonicalMatch(m);
      if (key === '{}') catchAll ??= i;
      const dup = seen.find((s) => s.key === key && s.rule < i);
      if (dup) ctx.report(r, 'IST0131', [...at, 'match', j], `VirtualService rule #${i} match #${j} is not used (duplicate/overlapping match in rule #${dup.rule})`, `remove this match, or change it so that it differs from rule #${dup.rule}'s`);
      seen.push({ rule: i, match: j, key });
    });
  });
  list(spec.tcp).forEach((rule, i) => {
    if (!isObject(rule)) return;
    const route = list(rule.route);
    route.forEach((d, j) => isObject(d) && destination(d.destination, ['spec', 'tcp', i, 'route', j, 'destination']));
    weights(route, ['spec', 'tcp', i, 'route']);
  });
}

/** A match as written, without its name, with keys sorted: equal strings are the same match. */
function canonicalMatch(m: unknown): string {
  if (!isObject(m)) return JSON.stringify(m);
  const { name: _name, ...rest } = m;
  return stable(rest);
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (isObject(v))
    return `{${Object.keys(v)
      .sort()
      .filter((k) => v[k] !== undefined && v[k] !== null)
      .map((k) => `${JSON.stringify(k)}:${stable(v[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

function checkDestinationRule(ctx: AnalysisContext, r: Resource, spec: Record<string, unknown>): void {
  if (r.body.kind !== 'DestinationRule') return;
  const dr = r.body.spec;
  const { resolved, covered } = servicesOf(ctx, dr.host, r.key.namespace);
  if (covered.length === 0) {
    ctx.report(r, 'IST0174', ['spec', 'host'], `The host ${resolved} defined in the DestinationRule does not match any Service: nothing is applied`, hostFix(ctx, dr.host, resolved));
  } else if (!resolved.startsWith('*')) {
    const svc = serviceOfHost(ctx, covered[0]!);
    if (svc?.spec.selector) {
      list(spec.subsets).forEach((s, i) => {
        if (!isObject(s) || typeof s.name !== 'string') return;
        const labels = dr.subsets.find((x) => x.name === s.name)?.labels ?? {};
        if (selectedPods(ctx, svc.r.key.namespace, { ...svc.spec.selector, ...labels }).length === 0)
          ctx.report(
            r,
            'IST0173',
            ['spec', 'subsets', i, 'labels'],
            `The subset ${s.name} selects no pod of Service ${svc.r.key.namespace}/${svc.r.key.name} (its selector ${labelText(svc.spec.selector!)} with ${labelText(labels)}): requests routed to it fail (503 UH)`,
            'change the labels of the subset to select the right pods, deploy the pods it is for, or remove the subset if nothing uses it',
          );
      });
    }
  }
  const tls = (policy: unknown, path: FieldPath, port?: number) => {
    if (!isObject(policy) || !isObject(policy.tls)) return;
    const mode = policy.tls.mode;
    if ((mode === 'SIMPLE' || mode === 'MUTUAL') && !policy.tls.caCertificates && !policy.tls.credentialName) {
      const what = `DestinationRule ${r.key.namespace}/${r.key.name} has TLS mode ${mode} but no caCertificates to verify the server of ${resolved}`;
      const fix = 'set caCertificates (or credentialName), or use ISTIO_MUTUAL for workloads in the mesh';
      if (port === undefined) ctx.report(r, 'IST0128', [...path, 'tls', 'mode'], what, fix);
      else ctx.report(r, 'IST0129', [...path, 'tls', 'mode'], `${what} at port ${port}`, fix);
    }
  };
  const policies = (tp: unknown, path: FieldPath) => {
    tls(tp, path);
    if (isObject(tp))
      list(tp.portLevelSettings).forEach((p, i) => {
        const port = isObject(p) && isObject(p.port) && typeof p.port.number === 'number' ? p.port.number : 0;
        tls(p, [...path, 'portLevelSettings', i], port);
      });
  };
  policies(spec.trafficPolicy, ['spec', 'trafficPolicy']);
  list(spec.subsets).forEach((s, i) => isObject(s) && policies(s.trafficPolicy, ['spec', 'subsets', i, 'trafficPolicy']));
}

function checkGatewayRoute(ctx: AnalysisContext, r: Resource, spec: Record<string, unknown>): void {
  const isService = (ref: Record<string, unknown>) => (ref.group === undefined || ref.group === '' || ref.group === null) && (ref.kind === undefined || ref.kind === 'Service');
  list(spec.parentRefs).forEach((p, i) => {
    if (!isObject(p) || typeof p.name !== 'string' || !isService(p)) return;
    const ns = typeof p.namespace === 'string' ? p.namespace : r.key.namespace;
    if (!ctx.services.has(`${ns}/${p.name}`))
      ctx.report(r, 'NM0102', ['spec', 'parentRefs', i], `parent Service ${ns}/${p.name} does not exist: the route attaches to nothing`, `create Service ${ns}/${p.name}, or correct the parentRef's name and namespace`);
  });
  list(spec.rules).forEach((rule, i) => {
    if (!isObject(rule)) return;
    list(rule.backendRefs).forEach((b, j) => {
      if (!isObject(b) || typeof b.name !== 'string' || !isService(b)) return;
      const ns = typeof b.namespace === 'string' ? b.namespace : r.key.namespace;
      if (!ctx.services.has(`${ns}/${b.name}`))
        ctx.report(r, 'IST0101', ['spec', 'rules', i, 'backendRefs', j], `Referenced Service not found: ${ns}/${b.name}; requests routed here fail (500, as Gateway API says for an invalid backend)`, `create Service ${ns}/${b.name}, or correct the backendRef`);
    });
  });
}

function checkConflictingHosts(ctx: AnalysisContext, all: MeshVs[]): void {
  const byHost = new Map<string, MeshVs[]>();
  for (const vs of all) {
    if (list(vs.spec.http).length === 0 && list(vs.spec.tcp).length === 0) continue;
    const hosts = new Set(list(vs.spec.hosts).filter((h): h is string => typeof h === 'string').map((h) => servicesOf(ctx, h, vs.r.key.namespace).resolved));
    for (const h of hosts) byHost.set(h, [...(byHost.get(h) ?? []), vs]);
  }
  const sees = (a: MeshVs, b: MeshVs) => a.audience === '*' || b.audience === '*' || [...a.audience].some((n) => (b.audience as Set<string>).has(n));
  for (const [host, list_] of byHost) {
    if (list_.length < 2) continue;
    for (const vs of list_) {
      const others = list_.filter((o) => o !== vs && sees(vs, o));
      if (others.length === 0) continue;
      const names = [vs, ...others].map((v) => `${v.r.key.namespace}/${v.r.key.name}`).sort();
      const i = list(vs.spec.hosts).findIndex((h) => typeof h === 'string' && servicesOf(ctx, h, vs.r.key.namespace).resolved === host);
      ctx.report(
        vs.r,
        'IST0109',
        ['spec', 'hosts', i],
        `The VirtualServices ${names.join(', ')} associated with the mesh define the same host ${host}: only the oldest applies (there is no merging for mesh traffic)`,
        'merge the conflicting VirtualServices into one resource',
      );
    }
  }
}

function hostFix(ctx: AnalysisContext, written: string, resolved: string): string {
  const parts = written.split('.');
  if (parts.length === 2 && ctx.services.has(`${parts[1]}/${parts[0]}`)) return `write ${written}.svc.cluster.local: a name with a dot is read as fully qualified`;
  if (!written.includes('.')) return `create Service ${written} in this namespace, correct the name, or write the fully qualified name of a Service in another namespace (name.namespace.svc.cluster.local)`;
  return `create the Service ${resolved} names, or correct the host`;
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const e = Object.entries(labels);
  return e.length === 0 ? '{}' : e.map(([k, v]) => `${k}=${v}`).join(',');
}
