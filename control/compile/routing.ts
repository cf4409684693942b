// VirtualService, DestinationRule and HTTPRoute/TCPRoute (GAMMA) → RoutingConfig.
//
// - DestinationRules → one DestinationPolicy per known Service (routing-destinations.ts).
// - Gateway API routes attached to a Service → its tables (routing-gateway.ts).
// - VirtualServices → tables for the Services they name (routing-istio.ts). A Service
//   with a producer HTTPRoute (or TCPRoute) is routed by its Gateway API routes and its
//   VirtualServices are not applied; a consumer route overrides them for its namespace only.
//   (Istio converts GAMMA routes to VirtualServices and prefers them for the hosts they
//   attach to; nodemesh makes that one rule rather than leaving it to creation order.)
// - Notes for the status of each resource: hosts that are not Services, subsets no
//   DestinationRule defines, VirtualServices that lose a host.
//
// Everything is sorted, so the same resources give the same RoutingConfig.
import type { DestinationPolicy, RouteTable, RoutingConfig } from '../api/snapshot-routing.js';
import type { CompileContext } from './context.js';
import { compileDestinations } from './routing-destinations.js';
import { compileGatewayRoutes } from './routing-gateway.js';
import { startRoutingCompilation, note, type RoutingCompilation } from './routing-compilation.js';
import { compileVirtualServices } from './routing-istio.js';
import { describeKey, type Resource } from '../model/resources.js';

export interface RoutingReport {
  routing: RoutingConfig;
  /** per resource (`VirtualService ns/name`): what to show next to "Accepted" */
  notes: Map<string, string[]>;
}

export function compileRouting(resources: readonly Resource[], ctx: CompileContext): RoutingConfig {
  return compileRoutingReport(resources, ctx).routing;
}

export function compileRoutingReport(resources: readonly Resource[], ctx: CompileContext): RoutingReport {
  const compilation = startRoutingCompilation(ctx);
  const destinations = compileDestinations(resources, compilation);
  const gateway = compileGatewayRoutes(resources, compilation);
  const gatewayKeys = new Set(gateway.tables.map((t) => `${t.host}\u0000${t.consumerNamespace}`));
  const byKey = new Map(resources.map((r) => [describeKey(r.key), r]));

  const routes: RouteTable[] = [...gateway.tables];
  for (const t of compileVirtualServices(resources, compilation)) {
    const key = `${t.host}\u0000${t.consumerNamespace}`;
    const overridden = gateway.producerHosts.has(t.host) ? 'HTTPRoute' : gatewayKeys.has(key) ? `consumer HTTPRoute in ${t.consumerNamespace}` : undefined;
    if (overridden) {
      const vs = byKey.get(t.source);
      if (vs) note(compilation, vs, `not applied to ${t.host}: the Service is routed by its Gateway API ${overridden} (${gateway.tables.find((g) => g.host === t.host)!.source}), which wins over VirtualServices`);
      continue;
    }
    routes.push(t);
  }
  routes.sort((a, b) => cmp(a.host, b.host) || cmp(a.consumerNamespace, b.consumerNamespace));
  noteUndefinedSubsets(routes, destinations, byKey, compilation);
  return { routing: { routes, destinations }, notes: compilation.notes };
}

/** "subset v3 not defined by any DestinationRule": requests sent there find no endpoints. */
function noteUndefinedSubsets(routes: readonly RouteTable[], destinations: readonly DestinationPolicy[], byKey: Map<string, Resource>, compilation: RoutingCompilation): void {
  // a host's policies for every caller and per namespace (exportTo): a subset any of them defines is defined
  const subsets = new Map<string, Set<string>>();
  for (const d of destinations) for (const s of d.subsets) subsets.set(d.host, (subsets.get(d.host) ?? new Set()).add(s.name));
  for (const t of routes) {
    const r = byKey.get(t.source);
    if (!r) continue;
    const dests = [...t.http.flatMap((h) => [...h.destinations, ...h.mirrors.map((m) => m.destination)]), ...t.tcp.flatMap((x) => x.destinations)];
    for (const d of dests)
      if (d.subset !== '' && !subsets.get(d.host)?.has(d.subset))
        note(compilation, r, `subset ${d.subset} of ${d.host} is not defined by any DestinationRule: requests routed there fail (503, no healthy upstream)`);
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
