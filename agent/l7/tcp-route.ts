// Opaque TCP to a Service (and HTTP/1.1 upgrades, which become TCP once routed): the L4
// features of the destination's routes and policy, at the source node proxy. The route is
// the Service's first TCP route for the port (weighted destinations), else the Service
// itself; then the cluster's maxConnections (fair per source), an endpoint, and outlier
// detection input: Envoy's tcp_proxy counts a connection made as a success and a failed one
// as a 503.
import type { Destination } from '../../control/api/snapshot-routing.js';
import type { Service, Workload } from '../../control/api/snapshot.js';
import { hashString } from '../cluster/load-balancer/consistent-hash.js';
import { ResponseFlag, type ResponseFlagValue } from '../transport/response-flags.js';
import type { ProxyState } from '../state/proxy-state.js';
import type { Engine } from './exchange.js';
import type { ConnInfo } from '../transport/connection.js';
import { routeTablesOf } from './route-table.js';
import type { Cluster, Host } from '../cluster/cluster.js';

/** How an opaque TCP connection goes, and what to tell the cluster as it does. */
export interface TcpPlan {
  flag: ResponseFlagValue;
  service: Service | undefined;
  ip: string;
  port: number;
  destination: Workload | undefined;
  connectTimeoutMs: number;
  /** the cluster's TCP idle timeout (Istio's connectionPool.tcp.idleTimeout); 0: the proxy's default */
  idleTimeoutMs: number;
  connected(): void;
  failed(): void;
  closed(): void;
}

/** Routes a TCP connection captured for `conn.target` in `state`: where to connect, or why not. */
export function planTcp(engine: Engine, state: ProxyState, conn: ConnInfo): TcpPlan {
  const service = conn.target.service;
  const requestPort = conn.target.port.port;
  const table = routeTablesOf(state).table(service.hostname, conn.source?.namespace ?? '');
  const route = table.tcp.find((r) => r.route.port === 0 || r.route.port === requestPort);
  const dest = route ? route.picker.pick(engine.random) : ({ host: service.hostname, subset: '', port: 0 } as Destination);
  const none = { service, ip: '', port: 0, destination: undefined, connectTimeoutMs: 0, idleTimeoutMs: 0, connected() {}, failed() {}, closed() {} };
  if (!dest) return { ...none, flag: ResponseFlag.NoHealthyUpstream };
  const cluster = engine.clusters.get(state, dest, requestPort, conn.source?.namespace);
  if (!cluster) return { ...none, flag: ResponseFlag.NoClusterFound };
  const cp = cluster.policy.connectionPool;
  if (!cluster.tcpConnections.tryAcquire(conn.sourceKey, cp.maxConnections)) return { ...none, service: cluster.service, flag: ResponseFlag.UpstreamOverflow };
  const hashInput = cluster.policy.loadBalancer.consistentHash?.kind === 'sourceIp' ? hashString(conn.sourceAddress) : undefined;
  const host = cluster.pick({ hash: hashInput, random: engine.random, now: engine.now() }, undefined);
  if (!host) {
    cluster.tcpConnections.release(conn.sourceKey);
    return { ...none, service: cluster.service, flag: ResponseFlag.NoHealthyUpstream };
  }
  cluster.begin(host);
  return new RoutedTcp(cluster, host, conn.sourceKey, cp.connectTimeoutMs, cp.tcpIdleTimeoutMs);
}

/**
 * A connection routed to an endpoint: a class, not an object of closures, because every held
 * TCP connection keeps its plan (10,000 held connections, 10,000 plans).
 */
class RoutedTcp implements TcpPlan {
  readonly flag = ResponseFlag.None;
  readonly service: Service;
  readonly ip: string;
  readonly port: number;
  readonly destination: Workload | undefined;
  private done = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly host: Host,
    private readonly sourceKey: string,
    readonly connectTimeoutMs: number,
    readonly idleTimeoutMs: number,
  ) {
    this.service = cluster.service;
    this.ip = host.endpoint.ip;
    this.port = host.endpoint.port;
    this.destination = host.workload;
  }

  connected(): void {
    this.cluster.onResponse(this.host, 200, -1);
  }

  failed(): void {
    this.cluster.onLocalFailure(this.host, 'connect-failure');
  }

  closed(): void {
    if (this.done) return;
    this.done = true;
    this.cluster.end(this.host, -1);
    this.cluster.tcpConnections.release(this.sourceKey);
  }
}
