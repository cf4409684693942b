// Upstream connections of the L7 proxy, all built on the Duplexes the UpstreamConnector hands
// out (plain TCP or HBONE tunnels): this file never dials a socket itself.
// - Http1Pool: an http.Agent per (source pod, endpoint) with keep-alive, whose
//   createConnection asks the connector; maxRequestsPerConnection and idleTimeout apply.
// - Http2Pool: HTTP/2 sessions per (source pod, endpoint), `http2.connect` over a connector
//   Duplex; a new session when the current one is going away or has served
//   maxRequestsPerConnection streams.
// Pools are per source pod so that an HBONE tunnel always carries its own pod's identity.
// How many requests may use them at once is the business of admission.ts. A connection its
// server closed leaves the pool at once, on every transport (transport/keep-alive.ts).
import http from 'node:http';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { endsWithTransport, pooledSocket, reusable } from '../transport/keep-alive.js';
import { ResponseFlag } from '../transport/response-flags.js';
import { connectWithTimeout, UpstreamError, type UpstreamConnector, type UpstreamRequest } from '../transport/connector.js';

export interface PoolOptions {
  /** told of every connection the pool opens (telemetry) */
  onConnection?: (d: Duplex) => void;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** 0 = unlimited */
  maxRequestsPerConnection: number;
}

const kServed = Symbol('nodemesh.served');

class PoolAgent extends http.Agent {
  constructor(
    private readonly connector: UpstreamConnector,
    private readonly dial: UpstreamRequest,
    private readonly opts: PoolOptions,
  ) {
    // maxSockets is unbounded here: Admission decides how many requests run at once
    super({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256, timeout: opts.idleTimeoutMs, scheduling: 'lifo' });
  }

  override createConnection(_options: unknown, cb: (err: Error | null, s?: Duplex) => void): undefined {
    connectWithTimeout(this.connector, this.dial, this.opts.connectTimeoutMs).then(
      (d) => {
        this.opts.onConnection?.(d);
        cb(null, pooledSocket(d));
      },
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
    return undefined;
  }

  /** set when the endpoint left: connections close when their request is done */
  closing = false;

  override keepSocketAlive(socket: Duplex): boolean {
    if (this.closing || !reusable(socket)) return false;
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
  /** connections held (busy and idle) */
  get size(): number {
    let n = 0;
    for (const l of Object.values(this.agent.sockets)) n += l?.length ?? 0;
    for (const l of Object.values(this.agent.freeSockets)) n += l?.length ?? 0;
    return n;
  }

  readonly agent: PoolAgent;

  constructor(connector: UpstreamConnector, dial: UpstreamRequest, opts: PoolOptions) {
    this.agent = new PoolAgent(connector, dial, opts);
  }

  /** Closes idle connections now and busy ones when their request is done. */
  close(): void {
    this.agent.closing = true;
    const free = this.agent.freeSockets as Record<string, Duplex[] | undefined>;
    for (const list of Object.values(free)) for (const s of list ?? []) s.destroy();
  }
}

export class Http2Pool {
  /** sessions held */
  get size(): number {
    return this.sessions.length;
  }

  private sessions: http2.ClientHttp2Session[] = [];
  private connecting: Promise<http2.ClientHttp2Session> | undefined;
  private readonly served = new WeakMap<http2.ClientHttp2Session, number>();
  private closed = false;

  constructor(
    private readonly connector: UpstreamConnector,
    private readonly dial: UpstreamRequest,
    private readonly opts: PoolOptions,
  ) {}

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
    endsWithTransport(s, d);
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
