// The node proxy's view of one snapshot, as ztunnel's ProxyState: built once when the
// snapshot arrives, never changed after, and swapped whole by the agent, so that a
// connection or a request reads one consistent state from start to end. Every per-snapshot
// lookup of the agent lives here, indexed once:
//   workloads by IP and by uid; Service ports by ClusterIP:port (what the outbound proxy
//   captures) and Services by hostname (what routes name); where each node's proxy listens;
//   which Service has a pod's port as an endpoint; destination policies by host; and the
//   compiled security policies.
// Layers above state/ derive their own per-snapshot structures from it (the L7 route tables)
// through a StateSlot: built at most once per state, on first use, and dropped with it.
import type { DestinationPolicy, RoutingConfig } from '../../control/api/snapshot-routing.js';
import type { GatewayInfo, Service, ServicePort, Snapshot, Workload } from '../../control/api/snapshot.js';
import { SecurityIndex } from '../policy/authorization.js';

/** A Service port a connection was captured for (by its ClusterIP:port). */
export interface ServiceTarget {
  service: Service;
  port: ServicePort;
}

let slots = 0;

/**
 * A structure a higher layer derives from a ProxyState (state/ imports none of them): the
 * layer defines the slot once, and every state builds the value on first use and keeps it.
 */
export class StateSlot<T> {
  readonly id = slots++;
  constructor(
    readonly name: string,
    readonly build: (state: ProxyState) => T,
  ) {}
}

let generations = 0;

export class ProxyState {
  /** before the first snapshot: nothing is known, nothing is captured */
  static readonly EMPTY = new ProxyState(undefined);

  /** the snapshot's version (0 before the first) */
  readonly version: number;
  /** increases with every state built, so that what is kept across states knows which is newer */
  readonly generation = ++generations;
  readonly snapshot: Snapshot | undefined;
  readonly routing: RoutingConfig;
  private readonly byIp = new Map<string, Workload>();
  private readonly byUid = new Map<string, Workload>();
  private readonly byVip = new Map<string, ServiceTarget>();
  private readonly byHost = new Map<string, Service>();
  private readonly nodes = new Map<string, string>();
  private readonly localities = new Map<string, string>();
  private readonly networks = new Map<string, string>();
  private readonly gatewaysOf = new Map<string, GatewayInfo[]>();
  private readonly endpointOf = new Map<string, Service>();
  private readonly policies = new Map<string, DestinationPolicy>();
  /** hostname → the namespaces that see it, for the Services not visible everywhere (exportTo) */
  private readonly audiences = new Map<string, ReadonlySet<string>>();
  private compiledSecurity: SecurityIndex | undefined;
  private readonly derived: unknown[] = [];

  constructor(snapshot: Snapshot | undefined) {
    this.version = snapshot?.version ?? 0;
    this.snapshot = snapshot;
    this.routing = snapshot?.routing ?? { routes: [], destinations: [] };
    if (!snapshot) return;
    for (const w of snapshot.workloads) {
      this.byIp.set(w.ip, w);
      this.byUid.set(w.uid, w);
    }
    for (const n of snapshot.nodes ?? []) {
      if (n.ip) this.nodes.set(n.name, n.ip);
      if (n.locality) this.localities.set(n.name, n.locality);
      if (n.network) this.networks.set(n.name, n.network);
    }
    for (const g of snapshot.gateways ?? []) this.gatewaysOf.set(g.network, [...(this.gatewaysOf.get(g.network) ?? []), g]);
    for (const service of snapshot.services) {
      this.byHost.set(service.hostname, service);
      if (service.exportTo !== undefined) this.audiences.set(service.hostname, new Set(service.exportTo === '~' ? [] : service.exportTo.split(',')));
      for (const port of service.ports) {
        for (const e of port.endpoints) {
          const k = `${e.workload}:${e.port}`;
          if (!this.endpointOf.has(k)) this.endpointOf.set(k, service);
        }
        if (!service.clusterIp) continue; // headless: nothing to capture
        if (port.protocol && port.protocol !== 'TCP') continue;
        this.byVip.set(`${service.clusterIp}:${port.port}`, { service, port });
      }
    }
    // a DestinationRule exported to some namespaces only: its policy is keyed `host|namespace`
    for (const d of this.routing.destinations ?? []) this.policies.set(d.consumerNamespace ? `${d.host}|${d.consumerNamespace}` : d.host, d);
  }

  workloadByIp(ip: string): Workload | undefined {
    return this.byIp.get(ip);
  }

  workloadByUid(uid: string): Workload | undefined {
    return this.byUid.get(uid);
  }

  /** The Service port a connection to ip:port was meant for, if that is a ClusterIP. */
  serviceByVip(ip: string, port: number): ServiceTarget | undefined {
    return this.byVip.get(`${ip}:${port}`);
  }

  /**
   * Does a pod of `namespace` see `service` (Istio's exportTo)? A source the snapshot does not
   * know (no namespace) sees only the Services every namespace sees.
   */
  visibleTo(service: Service, namespace: string | undefined): boolean {
    const audience = this.audiences.get(service.hostname);
    return audience === undefined || (namespace !== undefined && audience.has(namespace));
  }

  serviceByHost(hostname: string): Service | undefined {
    return this.byHost.get(hostname);
  }

  /** A Service that has `uid`'s `port` as an endpoint (the first in the snapshot's order). */
  serviceFor(uid: string, port: number): Service | undefined {
    return this.endpointOf.get(`${uid}:${port}`);
  }

  /** The address of a node's proxy, if the snapshot has one. */
  nodeIp(node: string): string | undefined {
    return this.nodes.get(node);
  }

  /** A node's locality ("region/zone/subzone"), if its labels give one. */
  nodeLocality(node: string): string | undefined {
    return this.localities.get(node);
  }

  /** A node's network (topology.istio.io/network); "" for the one flat network. */
  nodeNetwork(node: string): string {
    return this.networks.get(node) ?? '';
  }

  /** The east-west gateways into `network`, in the snapshot's order (none: it is unreachable from other networks). */
  gateways(network: string): readonly GatewayInfo[] {
    return this.gatewaysOf.get(network) ?? [];
  }

  /**
   * The DestinationRule-derived policy of a host for callers of `variant` (policyVariant's
   * answer; "": every caller without one of its own), if it has one.
   */
  destinationPolicy(host: string, variant = ''): DestinationPolicy | undefined {
    return variant ? this.policies.get(`${host}|${variant}`) : this.policies.get(host);
  }

  /** Which policy a caller of `namespace` gets for `host`: its namespace's own (exportTo), else the common one (""). */
  policyVariant(host: string, namespace: string | undefined): string {
    return namespace && this.policies.has(`${host}|${namespace}`) ? namespace : '';
  }

  /** The security section compiled for lookups by workload (on first use: the inbound side's). */
  get security(): SecurityIndex {
    this.compiledSecurity ??= this.snapshot ? SecurityIndex.of(this.snapshot.security) : SecurityIndex.empty();
    return this.compiledSecurity;
  }

  /** What `slot` derives from this state, built on first use and kept while the state lives. */
  derive<T>(slot: StateSlot<T>): T {
    let v = this.derived[slot.id] as T | undefined;
    if (v === undefined) {
      v = slot.build(this);
      this.derived[slot.id] = v;
    }
    return v;
  }
}
