// Trust-domain aliases (issue 13; Istio's MeshConfig `trustDomainAliases`, `nodemesh control
// --trust-domain-alias TD`): trust domains that are one with this mesh's own, as when
// clusters with different trust domains share a root, or during a trust-domain migration.
//
// As Istio does (pilot/pkg/security/trustdomain, ReplaceTrustDomainAliases):
// - An AuthorizationPolicy principal (`principals`, `notPrincipals`, a `source.principal`
//   condition) whose trust domain is this mesh's, one of its aliases, or "cluster.local" (a
//   name for the local trust domain whatever it is) stands for that path in every one of them:
//   `td-b/ns/a/sa/client` with aliases td-a↔td-b matches a peer of either.
// - One whose trust domain is a wildcard (`*/ns/a/sa/client`, a suffix match) or is another
//   domain altogether is kept as it is (Istio logs the latter; nodemesh too, in the status of
//   the policy, nowhere else: a foreign domain is a legitimate choice).
// - Only principals naming a path (`<td>/ns/...`) are rewritten: a prefix without "/ns/"
//   (`td-a/*`) is kept as written, as Istio's parser does.
// The snapshot carries the list (`trustDomains`: the mesh's own first), so the node proxy
// takes a peer proving the expected path in any of them as the expected identity
// (agent/hbone/identity-match.ts), which is how Istio expands the SANs a sidecar accepts.
import type { AuthorizationRule, AttributeMatch, ValueMatch } from '../api/snapshot-security.js';
import { TRUST_DOMAIN_DEFAULT } from '../api/snapshot.js';

/** The principals of `rules` expanded over the trust domains (`domains[0]` the mesh's own); rules unchanged without aliases. */
export function expandPrincipals(rules: readonly AuthorizationRule[], domains: readonly string[]): AuthorizationRule[] {
  if (domains.length < 2) return [...rules];
  const clause = (c: { matches: AttributeMatch[] }) => ({ ...c, matches: c.matches.map((m) => expandMatch(m, domains)) });
  return rules.map((r) => ({ ...r, from: r.from.map(clause), to: r.to, when: r.when.map((m) => expandMatch(m, domains)) }));
}

function expandMatch(m: AttributeMatch, domains: readonly string[]): AttributeMatch {
  if (m.attribute !== 'source.principal') return m;
  return { ...m, values: expandValues(m.values, domains), notValues: expandValues(m.notValues, domains) };
}

function expandValues(values: readonly ValueMatch[], domains: readonly string[]): ValueMatch[] {
  const out: ValueMatch[] = [];
  const seen = new Set<string>();
  const push = (v: ValueMatch) => {
    const k = `${v.kind} ${v.value}`;
    if (seen.has(k)) return;
    seen.add(k);
    out.push(v);
  };
  for (const v of values) {
    const at = v.value.indexOf('/ns/');
    // a suffix or presence match does not name a trust domain; no "/ns/": no path to carry over
    if ((v.kind !== 'exact' && v.kind !== 'prefix') || at <= 0) {
      push(v);
      continue;
    }
    const domain = v.value.slice(0, at);
    if (!domains.includes(domain) && domain !== TRUST_DOMAIN_DEFAULT) {
      push(v);
      continue;
    }
    for (const d of domains) push({ ...v, value: d + v.value.slice(at) });
  }
  return out;
}

/** The mesh's trust domain and its aliases (deduplicated, the mesh's first); [] without aliases. */
export function trustDomainList(trustDomain: string, aliases: readonly string[]): string[] {
  const list = [trustDomain, ...aliases.filter((a) => a !== trustDomain)];
  return [...new Set(list)].length > 1 ? [...new Set(list)] : [];
}
