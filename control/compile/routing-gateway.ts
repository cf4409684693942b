// Gateway API routes for the mesh (GAMMA): HTTPRoutes and TCPRoutes whose parentRef is a
// Service → RouteTables for that Service.
//
// - A route in the Service's namespace is a producer route (for every caller); a route in
//   another namespace is a consumer route, applied to callers in its own namespace only, and
//   for them it wins over the producer routes (Istio: "Consumer Namespace > Producer
//   Namespace"). On a port no consumer route attaches to, those callers keep the producer
//   routes.
// - All the rules of all the routes attached to a Service are ordered by Gateway API
//   precedence, match by match (sortGatewayEntries); no match is a 404: "When no rules
//   matching a request have been successfully attached to the parent a request is coming
//   from, a HTTP 404 status code MUST be returned."
// - backendRefs: an invalid one (no such Service, not a Service, another namespace without a
//   ReferenceGrant) keeps its weight but answers 500: "the proportion of requests that would
//   otherwise have been routed to an invalid backend MUST receive a 500 status code".
import type { Destination, HttpMatch, HttpRoute, RouteTable, TcpRoute } from '../api/snapshot-routing.js';
import type { Service } from '../api/snapshot.js';
import { defaultRoutesForUncoveredPorts, note, type RoutingCompilation } from './routing-compilation.js';
import { emptyHeaderOps, type BackendRef, type GatewayRule, type ObjectRef, type ParentRef, type ReferenceGrantSpec } from '../model/routing.js';
import { describeKey, type Resource } from '../model/resources.js';

/** One (rule, match) of an HTTPRoute attached to a Service port, with what precedence needs. */
export interface GatewayEntry {
  route: HttpRoute;
  createdAt: string;
  /** `namespace/name` of the HTTPRoute */
  nsName: string;
  ruleIndex: number;
  matchIndex: number;
}

interface Attached {
  host: string;
  /** "" = producer */
  audience: string;
  entries: GatewayEntry[];
  tcp: TcpRoute[];
  sources: Set<string>;
}

export interface GatewayTables {
  tables: RouteTable[];
  /** hosts with a producer HTTPRoute/TCPRoute: their VirtualServices are overridden */
  producerHosts: Set<string>;
}

export function compileGatewayRoutes(resources: readonly Resource[], compilation: RoutingCompilation): GatewayTables {
  const grants = resources.flatMap((r) => (r.body.kind === 'ReferenceGrant' ? [{ namespace: r.key.namespace, spec: r.body.spec }] : []));
  const attached = new Map<string, Attached>();
  const slot = (host: string, audience: string): Attached => {
    const k = `${host}\u0000${audience}`;
    let a = attached.get(k);
    if (!a) attached.set(k, (a = { host, audience, entries: [], tcp: [], sources: new Set() }));
    return a;
  };

  for (const r of resources) {
    const body = r.body;
    if (body.kind !== 'HTTPRoute' && body.kind !== 'TCPRoute') continue;
    const parents = body.spec.parentRefs;
    parents.forEach((p, i) => {
      const target = attach(r, p, i, compilation);
      if (!target) return;
      const a = slot(target.svc.hostname, r.key.namespace === target.svc.namespace ? '' : r.key.namespace);
      a.sources.add(describeKey(r.key));
      const resolve = (b: ObjectRef) => backend(r, parents, b, grants, compilation);
      if (body.kind === 'TCPRoute') {
        const rule = body.spec.rules[0]!;
        a.tcp.push({ port: target.port, destinations: rule.backendRefs.map((b) => destination(b, resolve(b))) });
        return;
      }
      for (const rule of body.spec.rules)
        rule.matches.forEach((m, j) =>
          a.entries.push({
            route: httpRoute(r, rule, j, { ...m, port: target.port }, resolve, compilation),
            createdAt: body.spec.createdAt,
            nsName: `${r.key.namespace}/${r.key.name}`,
            ruleIndex: rule.index,
            matchIndex: j,
          }),
        );
    });
  }

  const tables: RouteTable[] = [];
  const producerHosts = new Set<string>();
  for (const a of attached.values()) {
    if (a.audience === '') producerHosts.add(a.host);
    const entries = sortGatewayEntries(a.entries);
    let http = entries.map((e) => e.route);
    let sources = [...a.sources];
    if (a.audience !== '') {
      // ports no consumer route attaches to keep the producer routes
      const producer = attached.get(`${a.host}\u0000`);
      const uncovered = (compilation.services.get(a.host)?.ports ?? []).map((p) => p.port).filter((port) => !http.some((h) => h.match.some((m) => m.port === 0 || m.port === port)));
      if (producer && uncovered.length > 0) {
        const kept = sortGatewayEntries(producer.entries).flatMap((e) =>
          uncovered.filter((port) => e.route.match[0]!.port === 0 || e.route.match[0]!.port === port).map((port) => ({ ...e.route, match: [{ ...e.route.match[0]!, port }] })),
        );
        http = [...http, ...kept];
        if (kept.length > 0) sources = [...sources, ...producer.sources];
      }
    }
    if (http.length > 0) http = [...http, ...defaultRoutesForUncoveredPorts(a.host, http, compilation)];
    tables.push({
      host: a.host,
      consumerNamespace: a.audience,
      http,
      tcp: a.tcp,
      source: [...new Set(sources)].sort().join(', '),
      noMatch: http.length > 0 ? 'notFound' : 'passthrough',
    });
  }
  return { tables, producerHosts };
}

/** The Service and port a parentRef attaches to, or undefined (noted). */
function attach(r: Resource, p: ParentRef, i: number, compilation: RoutingCompilation): { svc: Service; port: number } | undefined {
  if (!(p.group === '' && p.kind === 'Service')) return undefined; // noted when validated
  const ns = p.namespace || r.key.namespace;
  const svc = compilation.byNsName.get(`${ns}/${p.name}`);
  if (!svc) {
    note(compilation, r, `spec.parentRefs[${i}]: Service ${ns}/${p.name} not found: not attached`);
    return undefined;
  }
  let port = p.port;
  if (p.sectionName) {
    const named = svc.ports.find((sp) => sp.name === p.sectionName);
    if (!named || (port !== 0 && named.port !== port)) {
      note(compilation, r, `spec.parentRefs[${i}]: Service ${ns}/${p.name} has no port named ${p.sectionName}${port ? ` with number ${port}` : ''}: not attached`);
      return undefined;
    }
    port = named.port;
  }
  if (port !== 0 && !svc.ports.some((sp) => sp.port === port)) {
    note(compilation, r, `spec.parentRefs[${i}]: Service ${ns}/${p.name} has no port ${port}: not attached`);
    return undefined;
  }
  return { svc, port };
}

/** A backendRef's Service hostname, or why it is invalid. */
function backend(r: Resource, parents: readonly ParentRef[], b: ObjectRef, grants: readonly { namespace: string; spec: ReferenceGrantSpec }[], compilation: RoutingCompilation): { host: string } | { invalid: string } {
  const ns = b.namespace || r.key.namespace;
  const what = `backendRef ${b.kind} ${ns}/${b.name}`;
  if (!(b.group === '' && b.kind === 'Service')) return { invalid: `${what}: only core Services are supported as backends` };
  const svc = compilation.byNsName.get(`${ns}/${b.name}`);
  if (!svc) return { invalid: `${what} not found` };
  if (ns !== r.key.namespace) {
    // a consumer route may send to the Service it is attached to without a grant
    const isParent = parents.some((p) => p.group === '' && p.kind === 'Service' && p.name === b.name && (p.namespace || r.key.namespace) === ns);
    const granted = grants.some(
      (g) =>
        g.namespace === ns &&
        g.spec.from.some((f) => f.group === 'gateway.networking.k8s.io' && f.kind === r.key.kind && f.namespace === r.key.namespace) &&
        g.spec.to.some((t) => t.group === '' && t.kind === 'Service' && (t.name === '' || t.name === b.name)),
    );
    if (!isParent && !granted) return { invalid: `${what} is in another namespace and no ReferenceGrant in ${ns} allows it (RefNotPermitted)` };
  }
  if (b.port !== 0 && !svc.ports.some((p) => p.port === b.port)) return { invalid: `${what} has no port ${b.port}` };
  return { host: svc.hostname };
}

function destination(b: BackendRef, resolved: { host: string } | { invalid: string }): Destination {
  const ok = 'host' in resolved;
  return {
    host: ok ? resolved.host : `${b.name}.${b.namespace || '-'}`,
    subset: '',
    port: b.port,
    weight: b.weight,
    headers: b.headers,
    failStatus: ok ? 0 : 500,
  };
}

function httpRoute(
  r: Resource,
  rule: GatewayRule,
  matchIndex: number,
  match: HttpMatch,
  resolve: (b: ObjectRef) => { host: string } | { invalid: string },
  compilation: RoutingCompilation,
): HttpRoute {
  const base = `${r.key.kind} ${r.key.namespace}/${r.key.name} rule ${rule.index}`;
  const name = rule.matches.length > 1 ? `${base} match ${matchIndex}` : base;
  const destinations = rule.backendRefs.map((b) => {
    const res = resolve(b);
    if ('invalid' in res) note(compilation, r, `spec.rules[${rule.index}]: ${res.invalid}: its share of requests is answered 500`);
    return destination(b, res);
  });
  const out: HttpRoute = {
    name,
    match: [match],
    destinations,
    timeoutMs: rule.timeoutMs,
    retries: rule.retries,
    headers: rule.headers,
    mirrors: rule.mirrors.flatMap((m) => {
      const res = resolve(m.backend);
      if ('invalid' in res) {
        // "If the referent cannot be found, this BackendRef is invalid and must be dropped"
        note(compilation, r, `spec.rules[${rule.index}]: mirror ${res.invalid}: not mirrored`);
        return [];
      }
      return [{ destination: { host: res.host, subset: '', port: m.backend.port, weight: 1, headers: { request: emptyHeaderOps(), response: emptyHeaderOps() }, failStatus: 0 }, percentage: m.percentage }];
    }),
  };
  if (rule.redirect) out.redirect = rule.redirect;
  else if (destinations.length === 0 || destinations.every((d) => d.weight === 0)) {
    // "If *all* entries in BackendRefs are invalid, and there are also no filters specified in
    // this route rule, *all* traffic which matches this rule MUST receive a 500 status code."
    // A rule with no backend to send to (none, or all weight 0) can only answer the same.
    out.destinations = [];
    out.directResponse = { status: 500, body: '' };
  }
  if (rule.rewrite) out.rewrite = rule.rewrite;
  return out;
}

/**
 * Gateway API precedence, match by match: "Exact" path, then "Prefix" path with the largest
 * number of characters, then method match, then the largest number of header matches, then
 * of query param matches (regular expressions after prefixes, as Istio orders them); then
 * "The oldest Route based on creation timestamp", "The Route appearing first in alphabetical
 * order by {namespace}/{name}", and within a route "the FIRST matching rule (in list order)".
 * A total order: the result does not depend on the input order.
 */
export function compareGatewayEntries(a: GatewayEntry, b: GatewayEntry): number {
  const ma = a.route.match[0]!;
  const mb = b.route.match[0]!;
  return (
    rank(mb) - rank(ma) ||
    (mb.uri?.value.length ?? 0) - (ma.uri?.value.length ?? 0) ||
    Number(mb.method !== undefined) - Number(ma.method !== undefined) ||
    mb.headers.length - ma.headers.length ||
    mb.queryParams.length - ma.queryParams.length ||
    byCreated(a.createdAt, b.createdAt) ||
    (a.nsName < b.nsName ? -1 : a.nsName > b.nsName ? 1 : 0) ||
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex ||
    // the same rule attached to several ports of one Service
    ma.port - mb.port
  );
}

export function sortGatewayEntries(entries: readonly GatewayEntry[]): GatewayEntry[] {
  return [...entries].sort(compareGatewayEntries);
}

function rank(m: HttpMatch): number {
  switch (m.uri?.kind) {
    case 'exact':
      return 3;
    case 'pathPrefix':
    case 'prefix':
      return 2;
    case 'regex':
      return 1;
    default:
      return 0;
  }
}

function byCreated(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '') return 1;
  if (b === '') return -1;
  return a < b ? -1 : 1;
}
