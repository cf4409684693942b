// DestinationRules → one DestinationPolicy per known Service host, every default filled in
// (and one per namespace a rule is exported to alone: Istio's exportTo, `consumerNamespace`).
//
// Several rules for one host are merged as Istio merges them: in age order, "the first
// traffic policy wins" (a later rule's trafficPolicy applies only if the earlier ones had
// none) and subsets are added unless a subset of that name already exists. A wildcard host
// (`*.ns.svc.cluster.local`) applies to the Services it covers that no more specific rule
// names.
//
// Within one rule, groups merge as Istio's MergeTrafficPolicy does: a subset's policy replaces
// the rule's a whole group at a time — "Settings specified at the subset level will override
// the corresponding settings specified at the DestinationRule level" — and port-level
// settings do the same for their port: "Traffic settings specified at the destination-level
// will not be inherited when overridden by port-level settings, i.e. default values will be
// applied to fields omitted in port-level traffic policies." For a subset on a port the order
// is rule → rule's port → subset → subset's port.
import { defaultTrafficPolicy, type DestinationPolicy, type Subset, type TrafficPolicy } from '../api/snapshot-routing.js';
import { aged, byAge, coveredHosts, note, resolveHost, unknownHostHint, type RoutingCompilation } from './routing-compilation.js';
import type { DestinationRuleSpec, PolicyGroups, PortGroups } from '../model/routing.js';
import { describeKey, type Resource } from '../model/resources.js';

interface Rule {
  r: Resource;
  spec: DestinationRuleSpec;
  /** "*" or the namespaces it is exported to ("." resolved) */
  audience: '*' | Set<string>;
}

export function compileDestinations(resources: readonly Resource[], compilation: RoutingCompilation): DestinationPolicy[] {
  const rules: Rule[] = [];
  for (const r of resources) {
    if (r.body.kind !== 'DestinationRule' || r.body.spec.workloadSelector) continue;
    const exp = r.body.spec.exportTo;
    const audience = exp.length === 0 || exp.includes('*') ? '*' : new Set(exp.map((e) => (e === '.' ? r.key.namespace : e)));
    rules.push({ r, spec: r.body.spec, audience });
  }
  rules.sort((a, b) => byAge(aged(a.r, a.spec.createdAt), aged(b.r, b.spec.createdAt)));

  // host → the rules of the highest specificity covering it, oldest first
  const byHost = new Map<string, { specificity: number; rules: Rule[] }>();
  for (const rule of rules) {
    const host = resolveHost(rule.spec.host, rule.r.key.namespace);
    const covered = coveredHosts(host, compilation);
    if (covered.length === 0) note(compilation, rule.r, `host ${host} is not a known Service: nothing to apply${unknownHostHint(host, compilation)}`);
    for (const { hostname, specificity } of covered) {
      const cur = byHost.get(hostname);
      if (!cur || specificity > cur.specificity) byHost.set(hostname, { specificity, rules: [rule] });
      else if (specificity === cur.specificity) cur.rules.push(rule);
    }
  }

  // exportTo, as for VirtualServices: the rules exported to every namespace make the policy of
  // every caller; a namespace some rule is exported to alone gets the merge of the rules it sees
  const out: DestinationPolicy[] = [];
  for (const [host, { rules: list }] of [...byHost].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const everyone = list.filter((x) => x.audience === '*');
    if (everyone.length) out.push(merge(host, everyone, compilation));
    const namespaces = new Set<string>();
    for (const x of list) if (x.audience !== '*') for (const ns of x.audience) namespaces.add(ns);
    for (const ns of [...namespaces].sort()) {
      // the caller's own namespace's rules first (Istio looks there first), then by age
      const seen = list.filter((x) => x.audience === '*' || x.audience.has(ns)).sort((a, b) => Number(b.r.key.namespace === ns) - Number(a.r.key.namespace === ns));
      out.push({ ...merge(host, seen, compilation), consumerNamespace: ns });
    }
  }
  return out;
}

function merge(host: string, list: Rule[], compilation: RoutingCompilation): DestinationPolicy {
  let top: { policy: PolicyGroups; ports: PortGroups[] } | undefined;
  const subsets: { name: string; labels: Record<string, string>; policy: PolicyGroups; ports: PortGroups[] }[] = [];
  for (const { r, spec } of list) {
    const hasPolicy = Object.keys(spec.policy).length > 0 || spec.ports.length > 0;
    if (hasPolicy && !top) top = { policy: spec.policy, ports: spec.ports };
    else if (hasPolicy) note(compilation, r, `trafficPolicy for ${host} is not applied: ${describeKey(list[0]!.r.key)} is older and its policy wins (subsets are merged)`);
    for (const s of spec.subsets) {
      if (subsets.some((x) => x.name === s.name)) note(compilation, r, `subset ${s.name} of ${host} is already defined by an older DestinationRule, which wins`);
      else subsets.push(s);
    }
  }
  const policy = applyGroups(defaultTrafficPolicy(), top?.policy);
  const topPorts = top?.ports ?? [];
  return {
    host,
    policy,
    ports: topPorts.map((p) => ({ port: p.port, policy: applyGroups(policy, p.groups) })),
    subsets: subsets.map((s): Subset => {
      const ports = [...new Set([...topPorts.map((p) => p.port), ...s.ports.map((p) => p.port)])].sort((a, b) => a - b);
      return {
        name: s.name,
        labels: s.labels,
        policy: applyGroups(policy, s.policy),
        // Istio's MergeTrafficPolicy: the rule's port-level settings first, then the subset, then its port-level settings
        ports: ports.map((port) => ({
          port,
          policy: applyGroups(applyGroups(applyGroups(policy, portGroups(topPorts, port)), s.policy), portGroups(s.ports, port)),
        })),
      };
    }),
    source: list.map(({ r }) => describeKey(r.key)).join(', '),
  };
}

/** `over`'s written groups replace `base`'s. */
function applyGroups(base: TrafficPolicy, over: PolicyGroups | undefined): TrafficPolicy {
  if (!over) return base;
  return {
    loadBalancer: over.loadBalancer ?? base.loadBalancer,
    connectionPool: over.connectionPool ?? base.connectionPool,
    outlierDetection: over.outlierDetection ?? base.outlierDetection,
    retryBudget: over.retryBudget ?? base.retryBudget,
  };
}

function portGroups(ports: readonly PortGroups[], port: number): PolicyGroups | undefined {
  return ports.find((p) => p.port === port)?.groups;
}
