// gRPC discovery server: nodemesh.v1.Discovery/Watch streams snapshots to node agents.
// Each Watch gets the current snapshot at once (or the first one as soon as it is
// compiled), then every new version: as a delta from the version before
// (api/snapshot-delta.ts) to an agent that asked for deltas and holds that version, else
// whole. Each version is encoded once (whole, and as a delta) for every agent. Snapshots
// supersede each other, so a slow agent is never queued a backlog: while its stream is over
// the high-water mark nothing more is written, and on 'drain' it gets only the newest
// snapshot (whole, unless it holds the version just before).
//
// Transport: insecure by default (tests of the stream); the control plane passes TLS
// server credentials and a node authenticator when it runs its CA (serving-tls.ts,
// node-auth.ts): then a Watch is refused unless the caller proved it is the node it names.
// Other services (the CA) are added to the same server with addService() before listen().
import * as grpc from '@grpc/grpc-js';
import { discoveryService, type Snapshot } from './api/snapshot.js';
import { deltaMessage, diffSnapshots } from './api/snapshot-delta.js';
import type { WatchRequest__Output } from './api/generated/nodemesh/v1/WatchRequest.js';
import { logger } from '../common/log.js';
import type { ControlMetrics } from './control-metrics.js';

const log = logger('control/discovery-server');

// the wire types as @grpc/proto-loader gives them (control/api/generated/): the request as
// decoded, the snapshot as it is written (version, a uint64, as a decimal string)
type WatchRequestWire = WatchRequest__Output;
type SnapshotWire = Omit<Snapshot, 'version'> & { version: string };

export interface AgentStatus {
  /** per-server stream id */
  id: number;
  node: string;
  peer: string;
  connectedAt: string;
  /** the version the agent said it had when it connected (0: none) */
  knownVersion: number;
  /** the last version written to its stream (0: none yet) */
  sentVersion: number;
}

interface Agent extends AgentStatus {
  call: grpc.ServerWritableStream<WatchRequestWire, SnapshotWire>;
  /** the agent takes deltas (WatchRequest.deltas) */
  deltas: boolean;
  /** the stream is over its high-water mark: wait for 'drain' */
  blocked: boolean;
}

export interface DiscoveryServerOptions {
  metrics: ControlMetrics;
  /** server → agent HTTP/2 keepalive pings, to notice vanished nodes (default 10 s, answered within 5 s) */
  keepaliveMs?: number;
  /** default: insecure */
  credentials?: grpc.ServerCredentials;
  /**
   * The node behind a call (throws with a gRPC `grpcCode` and a message when it is not
   * one); a Watch for another node than the caller's is refused too. `onRefused` sees each.
   */
  authenticate?: (call: grpc.ServerWritableStream<WatchRequestWire, SnapshotWire>) => string | Promise<string>;
  onRefused?: (reason: string) => void;
}

export class DiscoveryServer {
  private readonly server: grpc.Server;
  private readonly metrics: ControlMetrics;
  private readonly streams = new Map<number, Agent>();
  private current: Snapshot | undefined;
  /** the version before `current`: the base of the delta agents that hold it are sent */
  private previous: Snapshot | undefined;
  private encodedFor: Snapshot | undefined;
  private encodedBytes: Buffer | undefined;
  /** the delta previous → current, encoded; null: a whole snapshot is sent instead */
  private deltaFor: Snapshot | undefined;
  private deltaBytes: Buffer | null = null;
  private nextId = 1;
  private closing = false;
  private readonly opts: DiscoveryServerOptions;

  constructor(opts: DiscoveryServerOptions) {
    this.opts = opts;
    this.metrics = opts.metrics;
    // a node that vanished (powered off, partitioned) leaves a stream the kernel keeps for
    // minutes, and its snapshots queued behind it: a PING not answered within 5 s ends it.
    // Agents PING every 4 s themselves (control/api/control-target.ts); grpc-js servers
    // enforce no minimum interval, so theirs are never refused as too many.
    this.server = new grpc.Server({
      'grpc.keepalive_time_ms': opts.keepaliveMs ?? 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    });
    this.server.addService(encodeOnce(discoveryService().service), { watch: (call: Agent['call']) => this.watch(call) });
  }

  /** Binds `host:port` (port 0: any free port); resolves with the bound port. */
  listen(address: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, this.opts.credentials ?? grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) reject(new Error(`cannot listen for gRPC on ${address}: ${err.message}`, { cause: err }));
        else resolve(port);
      });
    });
  }

  /** Serves another service on the same port (before listen()). */
  addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    this.server.addService(service, implementation);
  }

  /** Makes `snapshot` current and sends it to every connected agent that lacks it. */
  publish(snapshot: Snapshot): void {
    if (this.current === snapshot) return;
    this.previous = this.current;
    this.current = snapshot;
    for (const a of this.streams.values()) this.send(a);
  }

  agents(): AgentStatus[] {
    return [...this.streams.values()].map(({ id, node, peer, connectedAt, knownVersion, sentVersion }) => ({
      id,
      node,
      peer,
      connectedAt,
      knownVersion,
      sentVersion,
    }));
  }

  /** Ends every stream (agents see a clean end and reconnect), then stops the server. */
  async close(graceMs = 2000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const a of this.streams.values()) a.call.end();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      force.unref();
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.streams.clear();
    this.metrics.connectedAgents.set(0);
  }

  private watch(call: Agent['call']): void {
    if (this.closing) {
      call.end();
      return;
    }
    if (!this.opts.authenticate) return this.register(call);
    // a token is reviewed by the API server: the stream is registered once that answered
    void this.admit(call).then((ok) => {
      if (ok && !this.closing && !call.cancelled) this.register(call);
      else if (ok) call.end();
    });
  }

  private register(call: Agent['call']): void {
    const agent: Agent = {
      id: this.nextId++,
      node: call.request.node ?? '',
      peer: call.getPeer(),
      connectedAt: new Date().toISOString(),
      knownVersion: Number(call.request.knownVersion ?? 0),
      sentVersion: 0,
      deltas: call.request.deltas === true,
      call,
      blocked: false,
    };
    this.streams.set(agent.id, agent);
    this.metrics.connectedAgents.set(this.streams.size);
    log.info({ node: agent.node, peer: agent.peer, knownVersion: agent.knownVersion }, 'agent connected');
    let gone = false;
    const remove = (why: string) => {
      if (gone) return;
      gone = true;
      this.streams.delete(agent.id);
      this.metrics.connectedAgents.set(this.streams.size);
      log.info({ node: agent.node, peer: agent.peer, why }, 'agent disconnected');
    };
    call.on('cancelled', () => remove('cancelled'));
    call.on('error', (err: Error) => remove(`error: ${err.message}`));
    call.on('close', () => remove('closed'));
    call.on('drain', () => {
      agent.blocked = false;
      this.send(agent);
    });
    this.send(agent);
  }

  private async admit(call: Agent['call']): Promise<boolean> {
    let code = grpc.status.UNAUTHENTICATED;
    let message: string;
    let reason = 'unauthenticated';
    try {
      const node = await this.opts.authenticate!(call);
      if (node === call.request.node) return true;
      code = grpc.status.PERMISSION_DENIED;
      reason = 'permission_denied';
      message = `the caller is node ${node} but watches as node ${JSON.stringify(call.request.node ?? '')}: an agent may watch only as its own node (--node)`;
    } catch (err) {
      const c = (err as { grpcCode?: grpc.status }).grpcCode;
      if (c !== undefined) code = c;
      reason = (err as { reason?: string }).reason ?? reason;
      message = (err as Error).message;
    }
    log.warn({ peer: call.getPeer(), node: call.request.node, reason }, message);
    this.opts.onRefused?.(reason);
    call.emit('error', Object.assign(new Error(message), { code, details: message }));
    return false;
  }

  /** The current snapshot as protobuf bytes, encoded once per version for every agent. */
  private encoded(snap: Snapshot): Buffer {
    if (this.encodedFor !== snap) {
      this.encodedBytes = serializeSnapshot({ ...snap, version: String(snap.version) });
      this.encodedFor = snap;
    }
    return this.encodedBytes!;
  }

  /**
   * The delta from the previous version to the current one, encoded once, for the agents
   * whose stream carried the previous version; null when a whole snapshot is the better
   * message (api/snapshot-delta.ts).
   */
  private delta(snap: Snapshot): Buffer | null {
    if (this.deltaFor !== snap) {
      this.deltaFor = snap;
      const d = this.previous ? diffSnapshots(this.previous, snap) : undefined;
      this.deltaBytes = d ? serializeSnapshot(deltaMessage(d) as unknown as SnapshotWire) : null;
    }
    return this.deltaBytes;
  }

  private send(a: Agent): void {
    const snap = this.current;
    if (!snap || a.blocked || a.sentVersion === snap.version || a.call.cancelled || a.call.writableEnded || a.call.destroyed) return;
    const delta = a.deltas && a.sentVersion !== 0 && a.sentVersion === this.previous?.version ? this.delta(snap) : null;
    const bytes = delta ?? this.encoded(snap);
    const ok = a.call.write(bytes as unknown as SnapshotWire);
    a.sentVersion = snap.version;
    const type = delta ? 'nodemesh.snapshot.delta' : 'nodemesh.snapshot';
    this.metrics.snapshotPushes.inc();
    this.metrics.xdsPushes.inc({ type });
    this.metrics.configSize.observe({ type }, bytes.length);
    const compiled = Date.parse(snap.generatedAt);
    if (compiled > 0) {
      const s = Math.max(0, (Date.now() - compiled) / 1000);
      this.metrics.convergence.observe(s);
      this.metrics.pushLatency.observe({ node: a.node }, s);
    }
    if (!ok) a.blocked = true;
  }
}

const watchDefinition = () => discoveryService().service.Watch as grpc.MethodDefinition<WatchRequestWire, SnapshotWire>;

/** The snapshot message's protobuf encoding (what the Watch stream carries). */
function serializeSnapshot(snap: SnapshotWire): Buffer {
  return watchDefinition().responseSerialize(snap);
}

/**
 * The Discovery service with a Watch whose stream also takes bytes already encoded: a new
 * version goes to every agent, and encoding a 10,000-workload snapshot (2 MiB) once per agent
 * was most of the control plane's work at that scale (with the garbage it made).
 */
function encodeOnce(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const watch = service.Watch as grpc.MethodDefinition<WatchRequestWire, SnapshotWire>;
  const serialize = watch.responseSerialize;
  return {
    ...service,
    Watch: { ...watch, responseSerialize: (v: SnapshotWire) => (Buffer.isBuffer(v) ? v : serialize(v)) },
  };
}
