// Upstream connections of the L7 proxy and the limits on them (Istio's connectionPool, Envoy's
// circuit breakers), all built on the Duplexes the UpstreamConnector hands out (plain TCP or
// HBONE tunnels): this file never dials a socket itself.
//
// - Admission, one per destination cluster: Envoy's max_requests (Istio http2MaxRequests) on
//   requests in flight, max_connections on HTTP/1.1 requests in flight (one per connection),
//   max_pending_requests (http1MaxPendingRequests) on the queue, max_retries on retries in
//   flight. "max_pending_requests: The maximum number of pending requests that Envoy will
//   allow to the upstream cluster" — past it the request is answered 503 at once with flag UO
//   and `x-envoy-overloaded: true`; nothing queues without bound. The queue is fair across
//   source workloads (per-workload-fairness.ts).
// - Http1Pool: an http.Agent per (source pod, endpoint) with keep-alive, whose
//   createConnection asks the connector; maxRequestsPerConnection and idleTimeout apply.
// - Http2Pool: HTTP/2 sessions per (source pod, endpoint), `http2.connect` over a connector
//   Duplex; a new session when the current one is going away or has served
//   maxRequestsPerConnection streams.
// Pools are per source pod so that an HBONE tunnel always carries its own pod's identity.
import http from 'node:http';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { ConnectionPool } from '../../control/api/snapshot-routing.js';
import type { Workload } from '../../control/api/snapshot.js';
import { withoutEmptyWrites } from '../transport/http2-write-fix.js';
import { FairQueue } from './per-workload-fairness.js';
import { ResponseFlag } from '../transport/response-flags.js';
import { UpstreamError, type UpstreamConnector } from '../transport/connector.js';

export type HttpProtocol = 'http1' | 'http2';

/** A request waiting to be admitted. */
export interface Waiter {
  readonly protocol: HttpProtocol;
  readonly sourceKey: string;
  /** admitted: it now holds a slot until it calls Admission.release */
  admit(): void;
  /** gave its queue slot to a lighter source: answer 503 UO */
  overflow(): void;
}

export type AdmitResult = 'admitted' | 'queued' | 'overflow';

export class Admission {
  active = 0;
  activeHttp1 = 0;
  retries = 0;
  private limits: ConnectionPool;
  private readonly queue: FairQueue<Waiter>;

  constructor(limits: ConnectionPool) {
    this.limits = limits;
    this.queue = new FairQueue(limits.http1MaxPendingRequests);
  }

  configure(limits: ConnectionPool): void {
    this.limits = limits;
    this.queue.limit = limits.http1MaxPendingRequests;
    this.pump();
  }

  get pending(): number {
    return this.queue.size;
  }

  private canStart(p: HttpProtocol): boolean {
    if (this.active >= this.limits.http2MaxRequests) return false;
    return p === 'http2' || this.activeHttp1 < this.limits.maxConnections;
  }

  /** Admits now (then `admit()` has NOT been called: the caller proceeds), queues, or refuses. */
  request(w: Waiter): AdmitResult {
    if (this.queue.size === 0 && this.canStart(w.protocol)) {
      this.take(w.protocol);
      return 'admitted';
    }
    const { admitted, evicted } = this.queue.push(w.sourceKey, w);
    evicted?.overflow();
    return admitted ? 'queued' : 'overflow';
  }

  /** Takes a slot only if one is free now, never queueing (request mirroring). */
  tryTake(p: HttpProtocol): boolean {
    if (this.queue.size > 0 || !this.canStart(p)) return false;
    this.take(p);
    return true;
  }

  /** A queued waiter gave up (its client went away). */
  cancel(w: Waiter): void {
    this.queue.remove(w.sourceKey, w);
  }

  release(p: HttpProtocol): void {
    this.active--;
    if (p === 'http1') this.activeHttp1--;
    this.pump();
  }

  /** Envoy's max_retries: retries in flight at once across the cluster. */
  tryRetry(): boolean {
    if (this.retries >= this.limits.maxRetries) return false;
    this.retries++;
    return true;
  }

  retryDone(): void {
    this.retries--;
  }

  /** Refuses everything still queued (the cluster is going away). */
  drain(): void {
    this.queue.drain((w) => w.overflow());
  }

  private take(p: HttpProtocol): void {
    this.active++;
    if (p === 'http1') this.activeHttp1++;
  }

  private pump(): void {
    while (this.queue.size > 0 && this.canStart('http1')) {
      const w = this.queue.shift()!;
      this.take(w.protocol);
      w.admit();
    }
  }
}

/** Who a pooled connection is dialled for (the connector needs it for HBONE identities). */
export interface DialInfo {
  source: Workload | undefined;
  sourceAddress: string;
  sourcePort: number;
  ip: string;
  port: number;
  destination: Workload | undefined;
}

export interface PoolOptions {
  /** told of every connection the pool opens (telemetry) */
  onConnection?: (d: Duplex) => void;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** 0 = unlimited */
  maxRequestsPerConnection: number;
}

/** Connects through the connector within `timeoutMs`; a late connection is closed. */
export function connectWithTimeout(connector: UpstreamConnector, d: DialInfo, timeoutMs: number): Promise<Duplex> {
  const p = connector.connect(d);
  if (!(timeoutMs > 0)) return p;
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      p.then(
        (s) => s.destroy(),
        () => {},
      );
      reject(new UpstreamError(ResponseFlag.UpstreamConnectionFailure, `connect to ${d.ip}:${d.port}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    p.then(
      (s) => {
        clearTimeout(timer);
        if (done) s.destroy();
        else resolve(s);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!done) reject(err);
      },
    );
  });
}

type SocketLike = Duplex & {
  setKeepAlive?: (...a: unknown[]) => unknown;
  setNoDelay?: (...a: unknown[]) => unknown;
  setTimeout?: (...a: unknown[]) => unknown;
  ref?: () => unknown;
  unref?: () => unknown;
  timeout?: number;
};

/**
 * http.Agent and ClientRequest call socket methods (setKeepAlive, ref, unref, setTimeout) that
 * a tunnel stream may not have: give it harmless ones; and keep empty chunks out of its
 * corked batches (http2-write-fix.ts).
 */
function asSocket(d: Duplex): Duplex {
  const s = d as SocketLike;
  const noop = () => s;
  s.setKeepAlive ??= noop;
  s.setNoDelay ??= noop;
  s.ref ??= noop;
  s.unref ??= noop;
  s.setTimeout ??= noop;
  withoutEmptyWrites(d);
  return s;
}

const kServed = Symbol('nodemesh.served');

class PoolAgent extends http.Agent {
  constructor(
    private readonly connector: UpstreamConnector,
    private readonly dial: DialInfo,
    private readonly opts: PoolOptions,
  ) {
    // maxSockets is unbounded here: Admission decides how many requests run at once
    super({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256, timeout: opts.idleTimeoutMs, scheduling: 'lifo' });
  }

  override createConnection(_options: unknown, cb: (err: Error | null, s?: Duplex) => void): undefined {
    connectWithTimeout(this.connector, this.dial, this.opts.connectTimeoutMs).then(
      (d) => {
        this.opts.onConnection?.(d);
        cb(null, asSocket(d));
      },
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
    return undefined;
  }

  /** set when the endpoint left: connections close when their request is done */
  closing = false;

  override keepSocketAlive(socket: Duplex): boolean {
    if (this.closing) return false;
    const s = socket as Duplex & { [kServed]?: number };
    const served = (s[kServed] ?? 0) + 1;
    s[kServed] = served;
    // maxRequestsPerConnection: "1 disables keep-alive"
    if (this.opts.maxRequestsPerConnection > 0 && served >= this.opts.maxRequestsPerConnection) return false;
    // Node's own check also honours the server's Keep-Alive: timeout= hint
    return (super.keepSocketAlive(socket as never) as unknown) !== false;
  }
}

export class Http1Pool {
  readonly agent: PoolAgent;

  constructor(connector: UpstreamConnector, dial: DialInfo, opts: PoolOptions) {
    this.agent = new PoolAgent(connector, dial, opts);
  }

  get idle(): boolean {
    return Object.keys(this.agent.sockets).length === 0;
  }

  /** Closes idle connections now and busy ones when their request is done. */
  close(): void {
    this.agent.closing = true;
    const free = this.agent.freeSockets as Record<string, Duplex[] | undefined>;
    for (const list of Object.values(free)) for (const s of list ?? []) s.destroy();
  }
}

/** The response and stream errors of an HTTP/2 request that mean "never processed". */
export function isRefusedStream(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(String((err as Error).message));
}

export class Http2Pool {
  private sessions: http2.ClientHttp2Session[] = [];
  private connecting: Promise<http2.ClientHttp2Session> | undefined;
  private readonly served = new WeakMap<http2.ClientHttp2Session, number>();
  private closed = false;

  constructor(
    private readonly connector: UpstreamConnector,
    private readonly dial: DialInfo,
    private readonly opts: PoolOptions,
  ) {}

  get idle(): boolean {
    return this.sessions.length === 0 && !this.connecting;
  }

  /** A session that can take one more stream now, if there is one. */
  ready(): http2.ClientHttp2Session | undefined {
    for (const s of this.sessions) {
      if (s.closed || s.destroyed) continue;
      const n = this.served.get(s) ?? 0;
      if (this.opts.maxRequestsPerConnection > 0 && n >= this.opts.maxRequestsPerConnection) continue;
      return s;
    }
    return undefined;
  }

  /** Counts a stream against the session (maxRequestsPerConnection); closes it when used up. */
  use(s: http2.ClientHttp2Session): void {
    const n = (this.served.get(s) ?? 0) + 1;
    this.served.set(s, n);
    if (this.opts.maxRequestsPerConnection > 0 && n >= this.opts.maxRequestsPerConnection) {
      this.sessions = this.sessions.filter((x) => x !== s);
      s.close(); // graceful: its streams finish
    }
  }

  session(): Promise<http2.ClientHttp2Session> {
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<http2.ClientHttp2Session> {
    const d = await connectWithTimeout(this.connector, this.dial, this.opts.connectTimeoutMs);
    if (this.closed) {
      d.destroy();
      throw new UpstreamError(ResponseFlag.UpstreamConnectionFailure, 'pool closed');
    }
    this.opts.onConnection?.(d);
    const s = http2.connect(`http://${this.dial.ip}:${this.dial.port}`, { createConnection: () => d });
    const drop = () => {
      this.sessions = this.sessions.filter((x) => x !== s);
    };
    s.on('error', drop);
    s.on('goaway', drop);
    s.on('close', drop);
    if (this.opts.idleTimeoutMs > 0) s.setTimeout(this.opts.idleTimeoutMs, () => s.close());
    s.unref();
    this.sessions.push(s);
    return s;
  }

  close(): void {
    this.closed = true;
    for (const s of this.sessions) s.close();
    this.sessions = [];
  }
}
