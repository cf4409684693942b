// Upstream connections of the L7 proxy, all built on the Duplexes the UpstreamConnector hands
// out (plain TCP or HBONE tunnels): this file never dials a socket itself.
// - Http1Pool: an undici Pool per (source pod, endpoint), driven through its dispatch API
//   (http1.ts, mirror.ts), whose `connect` asks the connector; keep-alive, the server's
//   `Keep-Alive: timeout=` hint, maxRequestsPerConnection and idleTimeout apply, with the
//   options inbound delivery's pod connections share (transport/undici-http1.ts). undici
//   replaced http.request + http.Agent (issue 15): the same engine spent less CPU per request
//   with it (ARCHITECTURE.md, "Proxy workers", measuring).
// - Http2Pool: HTTP/2 sessions per (source pod, endpoint), `http2.connect` over a connector
//   Duplex; a new session when the current one is going away or has served
//   maxRequestsPerConnection streams.
// Pools are per source pod so that an HBONE tunnel always carries its own pod's identity.
// How many requests may use them at once is the business of admission.ts: neither pool
// bounds its connections. A connection its server closed leaves the pool at once, on every
// transport (undici destroys an HTTP/1.1 connection that sees 'end'; transport/keep-alive.ts
// for HTTP/2).
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { Pool } from '../transport/undici-dispatchers.js';
import { endsWithTransport } from '../transport/keep-alive.js';
import { undiciHttp1Options } from '../transport/undici-http1.js';
import { withoutEmptyWrites } from '../transport/http2-write-fix.js';
import { ResponseFlag } from '../transport/response-flags.js';
import { connectWithTimeout, UpstreamError, type UpstreamConnector, type UpstreamRequest } from '../transport/connector.js';
import '../transport/async-bind-fix.js'; // HTTP/2 streams without DEP0172's per-stream cost

export interface PoolOptions {
  /** told of every connection the pool opens (telemetry) */
  onConnection?: (d: Duplex) => void;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** 0 = unlimited */
  maxRequestsPerConnection: number;
}

function noop(): void {}

export class Http1Pool {
  readonly pool: Pool;
  /**
   * Every request asks for `connection: close` (maxRequestsPerConnection 1, "1 disables
   * keep-alive"); false otherwise, which also keeps a HEAD's or a GET-with-body's connection,
   * as Node's agent did (undici would close those by default).
   */
  readonly resetEach: boolean;

  constructor(connector: UpstreamConnector, dial: UpstreamRequest, opts: PoolOptions) {
    const max = opts.maxRequestsPerConnection;
    this.resetEach = max === 1;
    const host = dial.ip.includes(':') ? `[${dial.ip}]` : dial.ip;
    const connect = (_o: unknown, cb: (err: Error | null, socket: Duplex | null) => void) => {
      connectWithTimeout(connector, dial, opts.connectTimeoutMs).then(
        (d) => {
          opts.onConnection?.(d);
          cb(null, withoutEmptyWrites(d));
        },
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err)), null),
      );
    };
    // admission.ts bounds requests in flight, one per connection (transport/undici-http1.ts)
    this.pool = new Pool(`http://${host}:${dial.port}`, { ...undiciHttp1Options(opts.idleTimeoutMs, max, connect), connections: null });
  }

  /** connections held (busy and idle) */
  get size(): number {
    return this.pool.stats.connected;
  }

  /** Closes idle connections now and busy ones when their request is done; takes no new request. */
  close(): void {
    if (!this.pool.closed && !this.pool.destroyed) this.pool.close(noop);
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
