// gRPC discovery server: nodemesh.v1.Discovery/Watch streams snapshots to node agents.
// Each Watch gets the current snapshot at once (or the first one as soon as it is
// compiled), then every new version. Snapshots supersede each other, so a slow agent is
// never queued a backlog: while its stream is over the high-water mark nothing more is
// written, and on 'drain' it gets only the newest snapshot.
//
// Transport: insecure by default (tests of the stream); the control plane passes TLS
// server credentials and a node authenticator when it runs its CA (serving-tls.ts,
// node-auth.ts): then a Watch is refused unless the caller proved it is the node it names.
// Other services (the CA) are added to the same server with addService() before listen().
import * as grpc from '@grpc/grpc-js';
import { discoveryService, type Snapshot } from './api/snapshot.js';
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
    this.server.addService(discoveryService().service, { watch: (call: Agent['call']) => this.watch(call) });
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

  private send(a: Agent): void {
    const snap = this.current;
    if (!snap || a.blocked || a.sentVersion === snap.version || a.call.cancelled || a.call.writableEnded || a.call.destroyed) return;
    const ok = a.call.write({ ...snap, version: String(snap.version) });
    a.sentVersion = snap.version;
    this.metrics.snapshotPushes.inc();
    this.metrics.xdsPushes.inc({ type: 'nodemesh.snapshot' });
    const compiled = Date.parse(snap.generatedAt);
    if (compiled > 0) {
      const s = Math.max(0, (Date.now() - compiled) / 1000);
      this.metrics.convergence.observe(s);
      this.metrics.pushLatency.observe({ node: a.node }, s);
    }
    if (!ok) a.blocked = true;
  }
}
