// The routes of one state, compiled for the request path: a route table per Service host
// (the producer table, and consumer tables per caller namespace), with every matcher,
// weighted picker and retry policy compiled. Built once per state (a StateSlot of the
// ProxyState, on first use); a request reads the tables of the state current when it
// starts, so a config change applies to new requests and never to one in flight. Where a
// destination leads (Service port, endpoints, traffic policy) is the cluster set's business.
//
// Mesh defaults, for a Service with no RouteTable (Istio's): one route to the Service itself,
// on the port the request came in on; retries: 2, on connect-failure, refused-stream,
// unavailable and cancelled (Istio's DefaultPolicy, which no longer lists 503); backoff 25 ms
// base, 250 ms max; no timeout; a retry prefers an endpoint not tried yet.
import { defaultRetryPolicy } from '../../control/api/snapshot-routing.js';
import type { Destination, HttpRoute, RetryPolicy, RouteTable, TcpRoute } from '../../control/api/snapshot-routing.js';
import { StateSlot, type ProxyState } from '../state/proxy-state.js';
import { compileRetry, type CompiledRetry } from './retry.js';
import { compileUriRegex, type CompiledUriRegex } from './header-ops.js';
import { compileRoute, type CompiledRoute } from './route-match.js';
import { WeightedPicker } from './weighted-picker.js';

/**
 * Istio's default retry policy, the same one the control plane fills in for a route without
 * `retries` (one definition: control/api/snapshot-routing.ts). Current Istio no longer
 * retries 503 by default (istio/istio#52111): an application's 503 may not be safe to retry.
 */
export const MESH_DEFAULT_RETRY: RetryPolicy = defaultRetryPolicy();

const NO_HEADER_OPS = { set: {}, add: {}, remove: [] };

/** A route with everything the request path needs compiled. */
export interface RouteEntry {
  readonly route: HttpRoute;
  readonly match: CompiledRoute;
  readonly picker: WeightedPicker<Destination>;
  readonly retry: CompiledRetry;
  readonly uriRegex: CompiledUriRegex | undefined;
  /** the table's source, for debugging */
  readonly source: string;
}

export interface CompiledTable {
  readonly table: RouteTable | undefined;
  readonly http: RouteEntry[];
  readonly tcp: { route: TcpRoute; picker: WeightedPicker<Destination> }[];
  readonly noMatch: 'passthrough' | 'notFound';
}

export function compileEntry(route: HttpRoute, source: string): RouteEntry {
  const gateway = source.startsWith('HTTPRoute');
  return {
    route,
    match: compileRoute(route),
    // Gateway API: a lone backendRef of weight 0 gets nothing; Istio: a lone destination gets all
    picker: new WeightedPicker(
      (route.destinations ?? []).map((d) => ({ item: d, weight: d.weight })),
      !gateway,
    ),
    retry: compileRetry(route.retries),
    uriRegex: route.rewrite?.uriRegex?.match ? compileUriRegex(route.rewrite.uriRegex) : undefined,
    source,
  };
}

/** The route of a Service without a RouteTable: to itself, with the mesh's default retries. */
function defaultTable(host: string): CompiledTable {
  const route: HttpRoute = {
    name: 'default',
    match: [],
    destinations: [{ host, subset: '', port: 0, weight: 100, headers: { request: NO_HEADER_OPS, response: NO_HEADER_OPS }, failStatus: 0 }],
    timeoutMs: 0,
    retries: MESH_DEFAULT_RETRY,
    headers: { request: NO_HEADER_OPS, response: NO_HEADER_OPS },
    mirrors: [],
  };
  const entry = compileEntry(route, 'mesh default');
  return { table: undefined, http: [entry], tcp: [], noMatch: 'passthrough' };
}

function compileTable(t: RouteTable): CompiledTable {
  return {
    table: t,
    http: (t.http ?? []).map((r) => compileEntry(r, t.source)),
    tcp: (t.tcp ?? []).map((r) => ({ route: r, picker: new WeightedPicker((r.destinations ?? []).map((d) => ({ item: d, weight: d.weight }))) })),
    noMatch: t.noMatch === 'notFound' ? 'notFound' : 'passthrough',
  };
}

export class CompiledRouteTables {
  private readonly producer = new Map<string, CompiledTable>();
  private readonly consumer = new Map<string, CompiledTable>();
  private readonly defaults = new Map<string, CompiledTable>();

  constructor(state: ProxyState) {
    for (const t of state.routing.routes ?? []) {
      const c = compileTable(t);
      if (t.consumerNamespace) this.consumer.set(`${t.host}|${t.consumerNamespace}`, c);
      else this.producer.set(t.host, c);
    }
  }

  /**
   * The routes for a caller in `sourceNamespace`: GAMMA "a consumer route ... applies only to
   * callers in that namespace" and wins over the producer's; else the producer table; else the
   * mesh default (the Service itself).
   */
  table(host: string, sourceNamespace: string): CompiledTable {
    const c = this.consumer.get(`${host}|${sourceNamespace}`) ?? this.producer.get(host);
    if (c) return c;
    this.defaultEntry(host);
    return this.defaults.get(host)!;
  }

  /** The mesh default route of a host (to the Service itself): where Istio sends unmatched requests. */
  defaultEntry(host: string): RouteEntry {
    let d = this.defaults.get(host);
    if (!d) {
      d = defaultTable(host);
      this.defaults.set(host, d);
    }
    return d.http[0]!;
  }
}

const ROUTE_TABLES = new StateSlot('compiled route tables', (state) => new CompiledRouteTables(state));

/** The compiled route tables of `state` (compiled on first use, once per state). */
export function routeTablesOf(state: ProxyState): CompiledRouteTables {
  return state.derive(ROUTE_TABLES);
}
