// Traffic management in the node proxy: the L7 engine for HTTP connections and the L4
// features for opaque TCP, both working at the SOURCE node proxy (the tunnel to the
// destination stays L4). It keeps the routing index of the current snapshot (built once per
// ServiceTable) and the destination clusters across snapshots.
//
// The outbound proxy calls:
//   protocolOf(target)        what the Service port declares (appProtocol / port name)
//   serveHttp(socket, conn, p) hands a captured connection to the HTTP/1.1 or HTTP/2 server
//   planTcp(conn)             weighted TCP route, connection limit, endpoint, outlier hooks
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Destination } from '../../control/api/snapshot-routing.js';
import type { Service, Workload } from '../../control/api/snapshot.js';
import { logger } from '../../common/log.js';
import { Cluster, realClock, type Clock, type Host } from '../cluster/cluster.js';
import type { ConnInfo, Engine } from './exchange.js';
import { L7Servers } from './servers.js';
import { hashString } from '../cluster/load-balancer/consistent-hash.js';
import { declaredProtocol, type Declared } from '../transport/protocol-detect.js';
import { labelSet, type LabelSet } from '../telemetry/request-telemetry.js';
import { FlowSet, trackUntilClose } from '../transport/flow.js';
import { tcpLabels } from '../telemetry/metrics.js';
import type { DialInfo } from '../cluster/pools.js';
import type { Duplex } from 'node:stream';
import { ResponseFlag, type ResponseFlagValue } from '../transport/response-flags.js';
import { RoutingIndex } from './route-table.js';
import type { ServiceTable, ServiceTarget } from '../state/service-table.js';
import type { UpstreamConnector, UpstreamRequest } from '../transport/connector.js';

const log = logger('agent/traffic');

export interface TrafficManagerOptions {
  connector: UpstreamConnector;
  /** the current service table; read at the start of every request */
  table: () => ServiceTable;
  clock?: Clock;
  random?: () => number;
}

/** How an opaque TCP connection goes, and what to tell the cluster as it does. */
export interface TcpPlan {
  flag: ResponseFlagValue;
  service: Service | undefined;
  ip: string;
  port: number;
  destination: Workload | undefined;
  connectTimeoutMs: number;
  connected(): void;
  failed(): void;
  closed(): void;
}

type SecurityOf = (req: UpstreamRequest) => { policy: 'mutual_tls' | 'none'; sourcePrincipal: string; destinationPrincipal: string } | undefined;

export class TrafficManager implements Engine {
  readonly random: () => number;
  private readonly clock: Clock;
  private readonly indexes = new WeakMap<ServiceTable, RoutingIndex>();
  private current: RoutingIndex | undefined;
  private readonly clusters = new Map<string, Cluster>();
  private readonly localLabels = new Map<string, LabelSet>();
  private readonly servers: L7Servers;
  /** Istio's TCP metrics of the connections the engine opens to endpoints (see transport/flow.ts) */
  private readonly connections = new FlowSet();
  private readonly onConnection = (d: Duplex, dial: DialInfo, c: Cluster) => {
    const sec = this.securityOf(dial);
    const l = tcpLabels(dial.source, c.service, dial.destination, `${dial.ip}:${dial.port}`, '-');
    if (sec) {
      l.connection_security_policy = sec.policy;
      l.source_principal = sec.sourcePrincipal || 'unknown';
      l.destination_principal = sec.destinationPrincipal || 'unknown';
    }
    trackUntilClose(this.connections, d, l, 'upstream');
  };

  constructor(private readonly opts: TrafficManagerOptions) {
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.servers = new L7Servers(this);
  }

  now(): number {
    return this.clock.now();
  }

  get connector(): UpstreamConnector {
    return this.opts.connector;
  }

  setTimer(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  }

  /** The routing index of the current snapshot (a request keeps the one it started with). */
  index(): RoutingIndex {
    const table = this.opts.table();
    let i = this.indexes.get(table);
    if (!i) {
      i = new RoutingIndex(table.snapshot);
      this.indexes.set(table, i);
      this.adopt(i);
    }
    return i;
  }

  /** A new snapshot: bring every cluster up to date, drop those whose destination is gone. */
  private adopt(i: RoutingIndex): void {
    if (this.current && this.current.generation > i.generation) return;
    this.current = i;
    this.localLabels.clear();
    for (const [name, c] of this.clusters) {
      const spec = i.cluster(c.host, c.subset, c.port);
      if (!spec) {
        c.dispose();
        this.clusters.delete(name);
        continue;
      }
      c.update(i.generation, { service: spec.service, port: spec.servicePort, endpoints: spec.endpoints, policy: spec.policy, workloads: i.workloads });
      // pools are per source pod: those of pods that left go (sources without a pod, keyed
      // by address, keep theirs while the cluster lives)
      c.trimPools((key) => i.workloads.has(key) || !key.includes('/'));
    }
  }

  /** The cluster a destination leads to (`port` 0: the port the request came in on). */
  cluster(index: RoutingIndex, d: Destination, requestPort: number): Cluster | undefined {
    const port = d.port || requestPort;
    const name = `${port}|${d.subset}|${d.host}`;
    const c = this.clusters.get(name);
    if (c && c.generation >= index.generation) return c;
    const spec = index.cluster(d.host, d.subset, port);
    if (!spec) return undefined;
    const target = { service: spec.service, port: spec.servicePort, endpoints: spec.endpoints, policy: spec.policy, workloads: index.workloads };
    if (c) {
      c.update(index.generation, target);
      return c;
    }
    const created = new Cluster(d.host, d.subset, port, index.generation, target, this.clock, this.opts.connector, this.onConnection);
    this.clusters.set(name, created);
    return created;
  }

  labels(conn: ConnInfo, cluster: Cluster | undefined, host: Host | undefined, grpc: boolean): LabelSet {
    const service = cluster?.service ?? conn.target.service;
    if (host) {
      let e = host.labels.get(conn.sourceKey);
      if (!e) host.labels.set(conn.sourceKey, (e = {}));
      const cached = grpc ? e.grpc : e.http;
      if (cached) return cached;
      const made = labelSet(conn.source, service, host.workload, host.key, grpc ? 'grpc' : 'http', this.security(conn, host));
      if (grpc) e.grpc = made;
      else e.http = made;
      return made;
    }
    const key = `${conn.sourceKey}|${service.hostname}|${grpc ? 'g' : 'h'}`;
    let s = this.localLabels.get(key);
    if (!s) {
      s = labelSet(conn.source, service, undefined, service.hostname, grpc ? 'grpc' : 'http', undefined);
      this.localLabels.set(key, s);
    }
    return s;
  }

  private security(conn: ConnInfo, host: Host): ReturnType<SecurityOf> {
    return this.securityOf({
      source: conn.source,
      sourceAddress: conn.sourceAddress,
      sourcePort: conn.sourcePort,
      ip: host.endpoint.ip,
      port: host.endpoint.port,
      destination: host.workload,
    });
  }

  /** How the connector would carry a connection (mTLS principals), if it says. */
  private securityOf(req: UpstreamRequest): ReturnType<SecurityOf> {
    const of = (this.opts.connector as { security?: SecurityOf }).security;
    return of ? of.call(this.opts.connector, req) : undefined;
  }

  protocolOf(target: ServiceTarget): Declared {
    return declaredProtocol(target.port);
  }

  serveHttp(socket: Socket, conn: ConnInfo, protocol: 'http1' | 'http2'): void {
    this.servers.serve(socket, conn, protocol);
  }

  /** Opaque TCP: weighted TCP route, maxConnections (fair per source), endpoint, outlier hooks. */
  planTcp(conn: ConnInfo): TcpPlan {
    const index = this.index();
    const service = conn.target.service;
    const requestPort = conn.target.port.port;
    const table = index.table(service.hostname, conn.source?.namespace ?? '');
    const route = table.tcp.find((r) => r.route.port === 0 || r.route.port === requestPort);
    const dest = route ? route.picker.pick(this.random) : ({ host: service.hostname, subset: '', port: 0 } as Destination);
    const none = { service, ip: '', port: 0, destination: undefined, connectTimeoutMs: 0, connected() {}, failed() {}, closed() {} };
    if (!dest) return { ...none, flag: ResponseFlag.NoHealthyUpstream };
    const cluster = this.cluster(index, dest, requestPort);
    if (!cluster) return { ...none, flag: ResponseFlag.NoClusterFound };
    const cp = cluster.policy.connectionPool;
    if (!cluster.tcpConnections.tryAcquire(conn.sourceKey, cp.maxConnections)) return { ...none, service: cluster.service, flag: ResponseFlag.UpstreamOverflow };
    const hashInput = cluster.policy.loadBalancer.consistentHash?.kind === 'sourceIp' ? hashString(conn.sourceAddress) : undefined;
    const host = cluster.pick({ hash: hashInput, random: this.random, now: this.clock.now() }, undefined);
    if (!host) {
      cluster.tcpConnections.release(conn.sourceKey);
      return { ...none, service: cluster.service, flag: ResponseFlag.NoHealthyUpstream };
    }
    cluster.begin(host);
    let closed = false;
    return {
      flag: ResponseFlag.None,
      service: cluster.service,
      ip: host.endpoint.ip,
      port: host.endpoint.port,
      destination: host.workload,
      connectTimeoutMs: cp.connectTimeoutMs,
      // Envoy's tcp_proxy: a connection made counts as a success, a failed one as a 503
      connected: () => cluster.onResponse(host, 200, -1),
      failed: () => cluster.onLocalFailure(host, 'connect-failure'),
      closed: () => {
        if (closed) return;
        closed = true;
        cluster.end(host, -1);
        cluster.tcpConnections.release(conn.sourceKey);
      },
    };
  }

  debug(): Record<string, unknown> {
    return { clusters: [...this.clusters.values()].map((c) => c.debug()) };
  }

  async close(): Promise<void> {
    await this.servers.close();
    for (const c of this.clusters.values()) c.dispose();
    this.clusters.clear();
    this.connections.close();
    log.debug('traffic manager closed');
  }

  /** For tests: the HTTP/1.1 server, to count its connections. */
  get http1Server(): http.Server {
    return this.servers.http1;
  }
}
