// The pool of HBONE connections: one HTTP/2 connection per (source identity, destination
// identity, destination node) carries many CONNECT streams, as ztunnel pools them.
//
// - Bounded: a connection takes at most `maxStreamsPerConnection` streams (and never more
//   than the peer's SETTINGS_MAX_CONCURRENT_STREAMS); the next stream opens another
//   connection to the same peer.
// - Concurrent callers share a connection that is still being dialled, up to its bound,
//   instead of each dialling their own.
// - Idle-closed: a connection with no stream for `idleTimeoutMs` is closed (unref'ed timer).
// - Dropped on GOAWAY, error or close: no new stream goes to it; its open streams finish.
// - Generations: a caller names the generation of the credentials it would dial with (a
//   hash of the client certificate and the trust bundle). Connections of another
//   generation take no new streams and are closed once drained, so after a certificate
//   rotation new streams ride new connections and old ones drain.
import type { ClientHttp2Session } from 'node:http2';
import { logger } from '../../common/log.js';
import { HBONE_MAX_STREAMS } from './protocol.js';

const log = logger('agent/hbone-pool');

export interface HbonePoolOptions {
  /** streams per connection before another is opened (ztunnel: 100) */
  maxStreamsPerConnection?: number;
  /** an unused connection is closed after this long (ztunnel: 5 min) */
  idleTimeoutMs?: number;
}

/** One stream's hold on a pooled connection; release() exactly once when the stream is done. */
export interface Lease {
  session: ClientHttp2Session;
  release(): void;
}

interface PooledConnection {
  key: string;
  generation: string;
  /** resolves once the connection can carry streams */
  ready: Promise<ClientHttp2Session>;
  session: ClientHttp2Session | undefined;
  /** streams reserved or open on it */
  active: number;
  /** takes no new streams; closed when active drops to 0 */
  draining: boolean;
  idle: NodeJS.Timeout | undefined;
}

export class HbonePool {
  private readonly byKey = new Map<string, PooledConnection[]>();
  private readonly all = new Set<PooledConnection>();
  private readonly maxStreams: number;
  private readonly idleTimeoutMs: number;
  private closed = false;

  constructor(opts: HbonePoolOptions = {}) {
    this.maxStreams = opts.maxStreamsPerConnection ?? HBONE_MAX_STREAMS;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 5 * 60_000;
  }

  /**
   * A connection of `key` and `generation` with room for one more stream: an open or
   * opening one if there is, else a new one from `dial`. Rejects with dial's error.
   */
  async acquire(key: string, generation: string, dial: () => Promise<ClientHttp2Session>): Promise<Lease> {
    if (this.closed) throw new Error('HBONE pool closed');
    const list = this.byKey.get(key) ?? [];
    let conn: PooledConnection | undefined;
    for (const c of list) {
      if (c.generation !== generation) this.drain(c, 'credentials rotated');
      else if (!conn && !c.draining && c.active < this.limit(c)) conn = c;
    }
    if (!conn) conn = this.open(key, generation, dial);
    conn.active++;
    if (conn.idle) {
      clearTimeout(conn.idle);
      conn.idle = undefined;
    }
    let session: ClientHttp2Session;
    try {
      session = await conn.ready;
    } catch (err) {
      conn.active--;
      throw err;
    }
    let released = false;
    const c = conn;
    return {
      session,
      release: () => {
        if (released) return;
        released = true;
        this.release(c);
      },
    };
  }

  /** Connections (open or opening) and the streams they carry, per key. */
  stats(): { connections: number; streams: number; byKey: Record<string, number[]> } {
    const byKey: Record<string, number[]> = {};
    let streams = 0;
    for (const c of this.all) {
      (byKey[c.key] ??= []).push(c.active);
      streams += c.active;
    }
    return { connections: this.all.size, streams, byKey };
  }

  /** Closes every connection (streams on them are reset). */
  close(): void {
    this.closed = true;
    for (const c of this.all) {
      if (c.idle) clearTimeout(c.idle);
      c.session?.destroy();
    }
    this.all.clear();
    this.byKey.clear();
  }

  private limit(c: PooledConnection): number {
    const peer = c.session?.remoteSettings.maxConcurrentStreams;
    return peer === undefined ? this.maxStreams : Math.min(this.maxStreams, peer);
  }

  private open(key: string, generation: string, dial: () => Promise<ClientHttp2Session>): PooledConnection {
    const conn: PooledConnection = {
      key,
      generation,
      ready: undefined as unknown as Promise<ClientHttp2Session>,
      session: undefined,
      active: 0,
      draining: false,
      idle: undefined,
    };
    conn.ready = dial().then(
      (session) => {
        if (this.closed) {
          session.destroy();
          throw new Error('HBONE pool closed');
        }
        conn.session = session;
        session.once('goaway', () => this.drain(conn, 'GOAWAY'));
        session.once('close', () => this.forget(conn));
        // errors reach the streams too; the connection just leaves the pool
        session.on('error', (err) => {
          log.debug({ key, err: err.message }, 'HBONE connection error');
          this.forget(conn);
        });
        return session;
      },
      (err: unknown) => {
        this.forget(conn);
        throw err;
      },
    );
    // a failed dial is reported to the callers awaiting ready; none may be left unhandled
    conn.ready.catch(() => {});
    const list = this.byKey.get(key);
    if (list) list.push(conn);
    else this.byKey.set(key, [conn]);
    this.all.add(conn);
    return conn;
  }

  private release(c: PooledConnection): void {
    c.active--;
    if (c.active > 0 || !c.session) return;
    if (c.draining || !this.all.has(c)) {
      c.session.close();
      this.forget(c);
      return;
    }
    c.idle = setTimeout(() => {
      log.debug({ key: c.key }, 'closing idle HBONE connection');
      c.session?.close();
      this.forget(c);
    }, this.idleTimeoutMs);
    c.idle.unref();
  }

  /** No new streams; closed when the last open one is done. */
  private drain(c: PooledConnection, why: string): void {
    if (c.draining) return;
    c.draining = true;
    log.debug({ key: c.key, why, streams: c.active }, 'draining HBONE connection');
    this.unlist(c);
    if (c.active === 0) {
      if (c.idle) clearTimeout(c.idle);
      c.session?.close();
      this.all.delete(c);
    }
  }

  private forget(c: PooledConnection): void {
    if (c.idle) clearTimeout(c.idle);
    c.idle = undefined;
    c.draining = true;
    this.unlist(c);
    this.all.delete(c);
  }

  private unlist(c: PooledConnection): void {
    const list = this.byKey.get(c.key);
    if (!list) return;
    const i = list.indexOf(c);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byKey.delete(c.key);
  }
}
