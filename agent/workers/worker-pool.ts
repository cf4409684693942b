// N proxy workers on N cores, one agent: the primary (the agent process) holds the listening
// descriptors, the control-plane stream, the identities and the datapath; each worker
// (worker-main.ts) serves the same outbound and inbound capture sockets — the very
// descriptors, inherited at spawn — so the kernel spreads accepted connections over the
// workers, and the inbound capture's socket in the SOCKMAP is the one they all accept on.
//
// HBONE (15008) is accepted by the primary, which hands each connection to the serving worker
// holding the fewest (the socket travels with an IPC message). Between two nodes the traffic
// rides a handful of pooled HBONE connections (one per source worker and destination
// identity), and a shared accept queue placed them at random: with two workers on each side,
// every request of a two-node run went through one destination worker in 4 of 8 (and 6 of
// 10) agent restarts, the other idle. A handover per connection is cheap for connections
// that live for minutes; the outbound and capture listeners, a connection per client
// connection, stay with the kernel. State reaches workers as
// messages: every snapshot, every identity change (certificates with their keys, the trust
// bundle), a certificate a worker asks for. /metrics sums every worker's registry with the
// primary's (prom-client's AggregatorRegistry); the tap forwards workers' connection events.
//
// A worker that dies is replaced (backoff from 100 ms to 5 s, reset after a minute up); its
// connections are lost, new ones go to the others meanwhile, and the listeners never close.
// Stopping asks every worker to stop accepting, then to close once the drain is over.
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { Counter, Gauge, aggregatorRegistry } from '../../common/prometheus.js';
import { logger } from '../../common/log.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import type { IdentityProvider } from '../identity/identity.js';
import { closeDescriptor } from '../datapath/socket-handoff.js';
import { registry } from '../telemetry/metrics.js';
import { connectionChannel, requestChannel } from '../telemetry/tap.js';
import type { FromWorker, IdentityUpdate, Question, ToWorker } from './protocol.js';
import type { Serving, ServingConfig, ServingDescriptors } from './serving.js';

const log = logger('agent/workers');

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));
/** How long a worker may take to answer a question (metrics, open connections, debug). */
const ASK_MS = 2_000;
/** How long a worker may take to close once told (then it is killed). */
const CLOSE_MS = 6_000;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5_000;
/** A worker up this long resets the restart backoff. */
const STABLE_MS = 60_000;
/** How often the primary looks whether anyone taps (workers publish only then). */
const TAP_POLL_MS = 500;
/** How long an accepted HBONE connection waits for a serving worker (all of them being replaced), then is closed. */
const HAND_WAIT_MS = 10_000;

const workerRestarts = new Counter({
  name: 'nodemesh_agent_worker_restarts_total',
  help: 'Proxy workers that exited unasked and were replaced',
  registers: [registry],
});
const workersUp = new Gauge({
  name: 'nodemesh_agent_workers',
  help: 'Proxy workers serving now',
  registers: [registry],
  aggregator: 'max',
});

export interface WorkerPoolOptions {
  count: number;
  config: ServingConfig;
  fds: ServingDescriptors;
  guard: { agentPorts: number[]; control: string };
  /** the current snapshot, for a worker that starts */
  snapshot: () => Snapshot | undefined;
  /** the primary's identities: what workers hold and what they ask for */
  identity: (IdentityProvider & { held(): { spiffeId: string }[] }) | undefined;
}

class Worker {
  listening = false;
  startedAt = Date.now();
  /** HBONE connections handed to it and not yet closed */
  hbone = 0;
  constructor(
    readonly index: number,
    readonly child: ChildProcess,
  ) {}
  send(m: ToWorker): void {
    if (this.child.connected) this.child.send(m, (err) => void err); // a worker that just died: its exit handler replaces it
  }
}

export class WorkerPool implements Serving {
  private readonly workers: (Worker | undefined)[];
  private readonly restartDelay: number[];
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private accepting = true;
  /** until every worker served once: an exit then fails the start instead of being replaced */
  private starting = true;
  private closed = false;
  /** whether anyone taps connections / requests here: workers publish only then */
  private readonly tapOn = { connection: false, request: false };
  private readonly tapTimer: NodeJS.Timeout;
  private identities: IdentityUpdate | undefined;
  /** resolves once every worker served once */
  private readonly firstListening: Promise<void>;
  private allListening!: () => void;
  private failedStart!: (err: Error) => void;
  /** the HBONE listener, on the primary's descriptor once every worker serves (until then the kernel queues) */
  private hboneListener: Server | undefined;
  /** HBONE connections accepted while no worker serves, each with its deadline */
  private readonly waitingHbone = new Map<Socket, NodeJS.Timeout>();
  /** the primary's HBONE descriptor is closed (by its listener, or directly if it never listened) */
  private hboneFdClosed = false;

  private constructor(private readonly opts: WorkerPoolOptions) {
    this.workers = new Array<Worker | undefined>(opts.count).fill(undefined);
    this.restartDelay = new Array<number>(opts.count).fill(RESTART_MIN_MS);
    this.firstListening = new Promise((resolve, reject) => {
      this.allListening = resolve;
      this.failedStart = reject;
    });
    this.tapTimer = setInterval(() => this.pollTap(), TAP_POLL_MS);
    this.tapTimer.unref();
  }

  /** Starts `count` workers and resolves once each serves (rejects if one cannot start). */
  static async start(opts: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(opts);
    await pool.refreshIdentities();
    for (let i = 0; i < opts.count; i++) pool.spawn(i);
    try {
      await pool.firstListening;
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  get count(): number {
    return this.opts.count;
  }

  /** The workers' pids (slot order; 0 for a slot being restarted). */
  get pids(): number[] {
    return this.workers.map((w) => w?.child.pid ?? 0);
  }

  get listening(): Serving['listening'] {
    const up = this.workers.some((w) => w?.listening);
    return { outbound: up, inbound: up, hbone: up && this.hboneListener !== undefined };
  }

  /** Starts accepting HBONE on the primary's descriptor (once: when every worker first serves). */
  private listenHbone(): void {
    const fd = this.opts.fds.hbone;
    if (fd === undefined || this.opts.identity === undefined || this.hboneListener || !this.accepting || this.closed) return;
    // paused: the socket is handed over before anything is read from it
    const server = createServer({ pauseOnConnect: true }, (socket) => this.handHbone(socket));
    server.on('error', (err) => log.error({ err }, 'HBONE listener error'));
    server.listen({ fd, backlog: 4096 });
    this.hboneListener = server;
  }

  private handHbone(socket: Socket): void {
    socket.on('error', () => socket.destroy()); // reset while it waits here
    let to: Worker | undefined;
    for (const w of this.workers) if (w?.listening && w.child.connected && (!to || w.hbone < to.hbone)) to = w;
    if (!to) {
      const timer = setTimeout(() => {
        this.waitingHbone.delete(socket);
        socket.destroy();
      }, HAND_WAIT_MS);
      this.waitingHbone.set(socket, timer);
      return;
    }
    const w = to;
    w.hbone++;
    w.child.send({ op: 'hbone-connection' } satisfies ToWorker, socket, (err) => {
      if (!err) return;
      w.hbone = Math.max(0, w.hbone - 1);
      socket.destroy();
    });
  }

  /** A worker serves again: the connections that waited for one go to the workers now. */
  private handWaitingHbone(): void {
    for (const [socket, timer] of this.waitingHbone) {
      clearTimeout(timer);
      this.waitingHbone.delete(socket);
      if (!socket.destroyed) this.handHbone(socket);
    }
  }

  private spawn(i: number): void {
    const { fds } = this.opts;
    const child = fork(WORKER_MAIN, [], {
      // the listeners at fixed positions (protocol.ts WORKER_FDS); HBONE's stays with the primary
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', fds.outbound, fds.inbound],
      serialization: 'advanced',
      env: { ...process.env, NODEMESH_WORKER: String(i) },
    });
    const w = new Worker(i, child);
    this.workers[i] = w;
    child.on('message', (m: FromWorker) => this.onMessage(w, m));
    child.on('error', (err) => log.warn({ err, worker: i }, 'proxy worker'));
    child.once('exit', (code, signal) => this.onExit(w, code, signal));
    const snapshot = this.opts.snapshot();
    w.send({ op: 'start', index: i, config: this.opts.config, hbone: this.opts.identity !== undefined && fds.hbone !== undefined, guard: this.opts.guard, snapshot, identities: this.identities });
    for (const kind of ['connection', 'request'] as const) if (this.tapOn[kind]) w.send({ op: 'tap', kind, on: true });
  }

  private onMessage(w: Worker, m: FromWorker): void {
    switch (m.op) {
      case 'listening':
        w.listening = true;
        this.updateGauge();
        if (this.starting && this.workers.every((x) => x?.listening)) {
          this.starting = false;
          this.allListening();
        }
        // from the start on, when every worker serves (what arrives before waits in the kernel's
        // queue, as it did for the workers): the first one would otherwise get all of it
        if (!this.starting) this.listenHbone();
        this.handWaitingHbone();
        return;
      case 'certificate': {
        const identity = this.opts.identity;
        if (!identity) return w.send({ op: 'certificate', id: m.id, error: 'no identities in this agent' });
        identity.certificate(m.spiffeId).then(
          (certificate) => w.send({ op: 'certificate', id: m.id, certificate }),
          (err: unknown) => w.send({ op: 'certificate', id: m.id, error: err instanceof Error ? err.message : String(err) }),
        );
        return;
      }
      case 'answer': {
        const q = this.waiting.get(m.id);
        if (!q) return;
        this.waiting.delete(m.id);
        clearTimeout(q.timer);
        q.resolve(m.value);
        return;
      }
      case 'tap':
        (m.kind === 'request' ? requestChannel : connectionChannel).publish(m.event);
        return;
      case 'hbone-closed':
        w.hbone = Math.max(0, w.hbone - 1);
        return;
      case 'closed':
        return;
    }
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.workers[w.index] !== w) return;
    this.workers[w.index] = undefined;
    this.updateGauge();
    if (this.closed || !this.accepting) return;
    if (this.starting) {
      this.failedStart(new Error(`proxy worker ${w.index} exited (${signal ?? code}) before every worker served`));
      return;
    }
    workerRestarts.inc();
    const i = w.index;
    if (Date.now() - w.startedAt > STABLE_MS) this.restartDelay[i] = RESTART_MIN_MS;
    const delay = this.restartDelay[i]!;
    this.restartDelay[i] = Math.min(RESTART_MAX_MS, delay * 2);
    log.warn({ worker: i, pid: w.child.pid, code, signal, restartInMs: delay }, 'proxy worker exited; replacing it (its connections are lost, the others serve)');
    const t = setTimeout(() => {
      this.restartTimers.delete(t);
      if (!this.closed && this.accepting) this.spawn(i);
    }, delay);
    this.restartTimers.add(t);
  }

  private updateGauge(): void {
    workersUp.set(this.workers.filter((w) => w?.listening).length);
  }

  private broadcast(m: ToWorker): void {
    for (const w of this.workers) w?.send(m);
  }

  /** A new snapshot for every worker. */
  setSnapshot(s: Snapshot): void {
    this.broadcast({ op: 'snapshot', snapshot: s });
  }

  private identityPush: Promise<void> | undefined;
  /** The primary's certificates or trust bundle changed: every worker gets them (coalesced). */
  identitiesChanged(): void {
    this.identityPush ??= new Promise<void>((r) => setImmediate(r)).then(async () => {
      this.identityPush = undefined;
      await this.refreshIdentities();
      if (this.identities) this.broadcast({ op: 'identities', identities: this.identities });
    });
  }

  private async refreshIdentities(): Promise<void> {
    const identity = this.opts.identity;
    if (!identity) return;
    const held = identity.held();
    const certificates = (await Promise.allSettled(held.map((h) => identity.certificate(h.spiffeId)))).flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    this.identities = { certificates, trustBundle: identity.trustBundle() };
  }

  /** Asks every worker whose channel is open (one just restarted answers before it listens); an answer not in time counts as missing. */
  private async ask(what: Question): Promise<unknown[]> {
    const answers = this.workers.map((w) => {
      if (!w?.child.connected) return Promise.resolve(undefined);
      return new Promise<unknown>((resolve) => {
        const id = this.nextId++;
        const timer = setTimeout(() => {
          this.waiting.delete(id);
          resolve(undefined);
        }, ASK_MS);
        timer.unref();
        this.waiting.set(id, { resolve, timer });
        w.send({ op: 'ask', id, what });
      });
    });
    return (await Promise.all(answers)).filter((a) => a !== undefined);
  }

  /** The Prometheus text of the primary's registry and every worker's, summed (gauges as each declares). */
  async metrics(): Promise<{ body: string; contentType: string }> {
    const all = [await registry.getMetricsAsJSON(), ...((await this.ask('metrics')) as MetricObjectWithValues<MetricValue<string>>[][])];
    const merged = aggregatorRegistry().aggregate(all as never);
    return { body: await merged.metrics(), contentType: registry.contentType };
  }

  private pollTap(): void {
    for (const [kind, channel] of [['connection', connectionChannel], ['request', requestChannel]] as const) {
      const on = channel.hasSubscribers;
      if (on === this.tapOn[kind]) continue;
      this.tapOn[kind] = on;
      this.broadcast({ op: 'tap', kind, on });
    }
  }

  stopAccepting(): void {
    if (!this.accepting) return;
    this.accepting = false;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    this.closeHboneListener();
    this.broadcast({ op: 'stop-accepting' });
  }

  /** Closes the primary's HBONE descriptor (a successor's copy keeps the socket open); what was accepted is still handed over. */
  private closeHboneListener(): void {
    if (this.hboneFdClosed) return;
    this.hboneFdClosed = true;
    const fd = this.opts.fds.hbone;
    if (this.hboneListener) this.hboneListener.close();
    else if (fd !== undefined) closeDescriptor(fd); // never listened on: ours to close
  }

  async openConnections(): Promise<number> {
    return ((await this.ask('open')) as number[]).reduce((a, b) => a + (typeof b === 'number' ? b : 0), 0);
  }

  /** The single-process view's keys summed over the workers (what tools read), and each worker's own view. */
  async debug(): Promise<Record<string, unknown>> {
    type WorkerView = { openConnections?: number; hbone?: { outbound?: { connections: number; streams: number }; inboundConnections?: number; inbound?: unknown[] } };
    const workers = (await this.ask('debug')) as (WorkerView & Record<string, unknown>)[];
    const sum = (f: (w: WorkerView) => number | undefined) => workers.reduce((a, w) => a + (f(w) ?? 0), 0);
    return {
      openConnections: sum((w) => w.openConnections),
      hbone: {
        outbound: { connections: sum((w) => w.hbone?.outbound?.connections), streams: sum((w) => w.hbone?.outbound?.streams) },
        inboundConnections: sum((w) => w.hbone?.inboundConnections),
        inbound: workers.flatMap((w) => w.hbone?.inbound ?? []),
      },
      // what the primary counts per worker to hand the next HBONE connection to the fewest
      hboneHanded: this.workers.flatMap((w) => (w ? [{ pid: w.child.pid ?? 0, connections: w.hbone }] : [])),
      workers,
    };
  }

  /** Tells every worker to close (cut what is left) and waits for each to exit (killing one that does not). */
  async close(): Promise<void> {
    this.closed = true;
    this.accepting = false;
    clearInterval(this.tapTimer);
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    this.closeHboneListener();
    for (const [socket, timer] of this.waitingHbone) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.waitingHbone.clear();
    await Promise.all(
      this.workers.map((w) => {
        if (!w || w.child.exitCode !== null || w.child.signalCode !== null) return Promise.resolve();
        return new Promise<void>((resolve) => {
          const kill = setTimeout(() => w.child.kill('SIGKILL'), CLOSE_MS);
          w.child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          w.send({ op: 'close' });
        });
      }),
    );
    for (const q of this.waiting.values()) {
      clearTimeout(q.timer);
      q.resolve(undefined);
    }
    this.waiting.clear();
    workersUp.set(0);
  }
}
