// Which server identity a node proxy accepts for the one it expects (issue 13): the expected
// SPIFFE ID itself or, with trust-domain aliases (the snapshot's `trustDomains`, the mesh's
// own first), the same path in another domain of that list — what Istio does when it expands
// the SANs a sidecar accepts over MeshConfig trustDomainAliases. The chain is verified against
// the trust bundle before this runs: an alias widens whose names count, never whose roots.

/** Does `actual` stand for `expected` given the trust domains that are one (`domains`; none: only itself)? */
export function sameIdentity(actual: string, expected: string, domains: readonly string[]): boolean {
  if (actual === expected) return true;
  if (domains.length < 2) return false;
  const a = split(actual);
  const e = split(expected);
  return a !== undefined && e !== undefined && a.path === e.path && domains.includes(a.domain) && domains.includes(e.domain);
}

function split(id: string): { domain: string; path: string } | undefined {
  if (!id.startsWith('spiffe://')) return undefined;
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  return slash > 0 ? { domain: rest.slice(0, slash), path: rest.slice(slash) } : undefined;
}
