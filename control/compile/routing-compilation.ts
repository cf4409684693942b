// One routing compilation, shared by the routing compilers (routing.ts runs them in turn):
// the known Services it resolves hosts against, by hostname and by namespace/name, and the
// notes it collects for the status of each resource; with the rules every routing compiler
// applies to hosts: Istio's short-name resolution, host wildcards, "oldest first" ordering,
// default routes for the ports no route covers.
import { defaultRetryPolicy, type HttpRoute } from '../api/snapshot-routing.js';
import { CLUSTER_DOMAIN, type Service } from '../api/snapshot.js';
import type { CompileContext } from './context.js';
import { describeKey, type Resource } from '../model/resources.js';
import { emptyHeaderOps } from '../model/routing.js';

/** The state of one routing compilation (not the agent's per-snapshot route lookup). */
export interface RoutingCompilation {
  /** by hostname `name.ns.svc.cluster.local` */
  services: ReadonlyMap<string, Service>;
  /** by `ns/name` */
  byNsName: ReadonlyMap<string, Service>;
  /** notes per resource (`VirtualService ns/name`), for its status */
  notes: Map<string, string[]>;
}

export function startRoutingCompilation(ctx: CompileContext): RoutingCompilation {
  return {
    services: new Map(ctx.services.map((s) => [s.hostname, s])),
    byNsName: new Map(ctx.services.map((s) => [`${s.namespace}/${s.name}`, s])),
    notes: new Map(),
  };
}

export function note(compilation: RoutingCompilation, r: Resource, message: string): void {
  const key = describeKey(r.key);
  const list = compilation.notes.get(key) ?? [];
  if (!list.includes(message)) list.push(message);
  compilation.notes.set(key, list);
}

/**
 * Istio's ResolveShortnameToFQDN: a name without a dot is a short name in the namespace of
 * the rule ("Istio will interpret the short name based on the namespace of the rule, not the
 * service"); a name with a dot is used as written (a trailing dot is dropped).
 */
export function resolveHost(host: string, namespace: string): string {
  if (host.includes(':') || /^[0-9.]+$/.test(host)) return host; // an IP address
  if (!host.includes('.')) return `${host}.${namespace}.svc.${CLUSTER_DOMAIN}`;
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/** A hint for a host that is not a known Service, e.g. `reviews.default` → the FQDN. */
export function unknownHostHint(host: string, compilation: RoutingCompilation): string {
  const fqdn = `${host}.svc.${CLUSTER_DOMAIN}`;
  if (host.split('.').length === 2 && compilation.services.has(fqdn)) return `; did you mean ${fqdn}? (names with a dot are read as fully qualified)`;
  return '';
}

/** Known Service hostnames a (resolved) host covers, with its specificity (longer = more specific; exact beats any wildcard). */
export function coveredHosts(host: string, compilation: RoutingCompilation): { hostname: string; specificity: number }[] {
  if (!host.startsWith('*')) return compilation.services.has(host) ? [{ hostname: host, specificity: Number.MAX_SAFE_INTEGER }] : [];
  const suffix = host.slice(1);
  return [...compilation.services.keys()].filter((h) => h.endsWith(suffix) && h.length > suffix.length).map((hostname) => ({ hostname, specificity: suffix.length }));
}

export interface Aged {
  createdAt: string;
  namespace: string;
  name: string;
}

/**
 * Oldest first ("the oldest one wins", as Istio resolves conflicts and Gateway API orders
 * route precedence ties), then alphabetical `{namespace}/{name}`. Resources written without
 * a creationTimestamp (files not from an API server) count as the newest.
 */
export function byAge(a: Aged, b: Aged): number {
  if (a.createdAt !== b.createdAt) {
    if (a.createdAt === '') return 1;
    if (b.createdAt === '') return -1;
    return a.createdAt < b.createdAt ? -1 : 1;
  }
  const x = `${a.namespace}/${a.name}`;
  const y = `${b.namespace}/${b.name}`;
  return x < y ? -1 : x > y ? 1 : 0;
}

export function aged(r: Resource, createdAt: string): Aged {
  return { createdAt, namespace: r.key.namespace, name: r.key.name };
}

/** Whether an http route can match requests sent to `port`. */
export function appliesToPort(route: HttpRoute, port: number): boolean {
  return route.match.length === 0 || route.match.some((m) => m.port === 0 || m.port === port);
}

/**
 * For each port of the Service that none of `routes` can match, a route sending that port's
 * requests to the Service itself, as if it had no routes (Istio builds routes per port and
 * gives a port without any its default route; GAMMA routes attach per port).
 */
export function defaultRoutesForUncoveredPorts(host: string, routes: readonly HttpRoute[], compilation: RoutingCompilation): HttpRoute[] {
  const svc = compilation.services.get(host);
  if (!svc) return [];
  return svc.ports
    .filter((p) => !routes.some((r) => appliesToPort(r, p.port)))
    .map((p) => ({
      name: `default route for port ${p.port}`,
      match: [{ headers: [], withoutHeaders: [], queryParams: [], port: p.port, sourceLabels: {}, sourceNamespace: '' }],
      destinations: [{ host, subset: '', port: 0, weight: 100, headers: { request: emptyHeaderOps(), response: emptyHeaderOps() }, failStatus: 0 }],
      timeoutMs: 0,
      retries: defaultRetryPolicy(),
      headers: { request: emptyHeaderOps(), response: emptyHeaderOps() },
      mirrors: [],
    }));
}
