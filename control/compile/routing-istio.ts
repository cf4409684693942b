// VirtualServices → RouteTables for the known Service hosts they name.
//
// For mesh traffic Istio does not merge VirtualServices ("There is no merging for mesh"):
// among those naming a host, the oldest wins ("In VirtualService oldest one wins"); an exact
// host beats a wildcard, and a longer wildcard a shorter one. exportTo limits who sees one: a
// VirtualService exported to some namespaces only yields a table for callers in those
// namespaces (when it is the oldest they see). A Service with a GAMMA HTTPRoute is routed by
// its HTTPRoutes (see routing.ts), and its VirtualServices then say so in their status.
import type { Destination, HttpRoute, RouteTable, TcpRoute } from '../api/snapshot-routing.js';
import { aged, byAge, coveredHosts, defaultRoutesForUncoveredPorts, note, resolveHost, unknownHostHint, type RoutingCompilation } from './routing-compilation.js';
import type { VirtualServiceSpec } from '../model/routing.js';
import { describeKey, type Resource } from '../model/resources.js';

interface Vs {
  r: Resource;
  spec: VirtualServiceSpec;
  /** "*" or the namespaces it is exported to */
  audience: '*' | Set<string>;
}

export function compileVirtualServices(resources: readonly Resource[], compilation: RoutingCompilation): RouteTable[] {
  const all: Vs[] = [];
  for (const r of resources) {
    if (r.body.kind !== 'VirtualService') continue;
    const spec = r.body.spec;
    if (spec.http.length === 0 && spec.tcp.length === 0) continue; // gateway-only or nothing for mesh (noted when validated)
    const exp = spec.exportTo;
    const audience = exp.length === 0 || exp.includes('*') ? '*' : new Set(exp.map((e) => (e === '.' ? r.key.namespace : e)));
    all.push({ r, spec, audience });
  }
  all.sort((a, b) => byAge(aged(a.r, a.spec.createdAt), aged(b.r, b.spec.createdAt)));

  const candidates = new Map<string, { specificity: number; list: Vs[] }>();
  for (const vs of all) {
    for (const raw of vs.spec.hosts) {
      const host = resolveHost(raw, vs.r.key.namespace);
      const covered = coveredHosts(host, compilation);
      if (covered.length === 0) note(compilation, vs.r, `host ${host} is not a known Service: nothing to apply${unknownHostHint(host, compilation)}`);
      for (const { hostname, specificity } of covered) {
        const cur = candidates.get(hostname);
        if (!cur || specificity > cur.specificity) candidates.set(hostname, { specificity, list: [vs] });
        else if (specificity === cur.specificity && !cur.list.includes(vs)) cur.list.push(vs);
      }
    }
  }

  const tables: RouteTable[] = [];
  for (const [host, { list }] of candidates) {
    const winners = new Set<Vs>();
    const producer = list.find((v) => v.audience === '*');
    if (producer) {
      tables.push(table(host, '', producer, compilation));
      winners.add(producer);
    }
    const namespaces = new Set<string>();
    for (const v of list) if (v.audience !== '*') for (const ns of v.audience) namespaces.add(ns);
    for (const ns of [...namespaces].sort()) {
      const seen = list.find((v) => v.audience === '*' || v.audience.has(ns))!;
      if (seen === producer) continue;
      tables.push(table(host, ns, seen, compilation));
      winners.add(seen);
    }
    const oldest = list.find((v) => winners.has(v))!;
    for (const v of list)
      if (!winners.has(v))
        note(compilation, v.r, `not applied to ${host}: ${describeKey(oldest.r.key)} is older and wins (Istio does not merge VirtualServices for mesh traffic)`);
  }
  return tables;
}

function table(host: string, consumerNamespace: string, vs: Vs, compilation: RoutingCompilation): RouteTable {
  const ns = vs.r.key.namespace;
  const dest = (d: Destination): Destination => {
    const resolved = resolveHost(d.host, ns);
    if (!compilation.services.has(resolved)) note(compilation, vs.r, `destination host ${resolved} is not a known Service: requests routed there fail (503)${unknownHostHint(resolved, compilation)}`);
    return { ...d, host: resolved };
  };
  const http: HttpRoute[] = vs.spec.http.map((h) => ({
    ...h,
    destinations: h.destinations.map(dest),
    mirrors: h.mirrors.map((m) => ({ ...m, destination: dest(m.destination) })),
  }));
  const tcp: TcpRoute[] = vs.spec.tcp.map((t) => ({ ...t, destinations: t.destinations.map(dest) }));
  // A request no rule matches gets 404 (Envoy's NR: Istio adds no fallback to a virtual host
  // that has routes); a port none of the rules can match keeps its default route.
  if (http.length > 0) http.push(...defaultRoutesForUncoveredPorts(host, http, compilation));
  return { host, consumerNamespace, http, tcp, source: describeKey(vs.r.key), noMatch: http.length > 0 ? 'notFound' : 'passthrough' };
}
