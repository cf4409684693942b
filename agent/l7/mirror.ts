// Request mirroring (Istio `mirror`/`mirrors` with `mirrorPercentage`, Gateway API
// RequestMirror): a fire-and-forget copy of the request to another destination, whose
// response is read and dropped. Envoy: "the Host/Authority header is altered to have
// -shadow appended". The copy is sent once the request body is complete, and only when the
// body was kept whole (REPLAY_MAX_BYTES): a mirror never holds up, slows or fails the real
// request. It takes a slot of the mirror cluster's circuit breakers but never queues: at the
// limit, the copy is skipped.
import type { Cluster, Host } from '../cluster/cluster.js';
import type { Downstream } from '../transport/connection.js';
import { h2RequestOptions } from '../transport/http2-request-options.js';

export interface MirrorRequest {
  conn: Downstream;
  cluster: Cluster;
  random: () => number;
  now: number;
  method: string;
  /** path with query, as sent upstream */
  path: string;
  authority: string;
  /** HTTP/1.1 raw headers (without hop-by-hop ones and without host) or HTTP/2 headers */
  raw: string[] | undefined;
  h2: Record<string, string | string[] | undefined> | undefined;
  body: Buffer[];
}

export function shadowAuthority(authority: string): string {
  const m = /^(.*?)(:\d+)?$/.exec(authority)!;
  return `${m[1]}-shadow${m[2] ?? ''}`;
}

export function sendMirror(m: MirrorRequest): void {
  const c = m.cluster;
  const protocol = m.h2 ? 'http2' : 'http1';
  if (!c.admission.tryTake(protocol)) return;
  const host = c.pick({ hash: undefined, random: m.random, now: m.now }, undefined);
  if (!host) {
    c.admission.release(protocol);
    return;
  }
  c.begin(host);
  let released = false;
  const done = () => {
    if (released) return;
    released = true;
    c.end(host, -1);
    c.admission.release(protocol);
  };
  if (m.h2) return mirrorH2(m, c, host, done);
  const pool = c.http1Pool(host, m.conn);
  const body = m.body.length === 0 ? null : m.body.length === 1 ? m.body[0]! : Buffer.concat(m.body);
  pool.pool.dispatch({ path: m.path, method: m.method, headers: [...m.raw!, 'host', shadowAuthority(m.authority)], body, reset: pool.resetEach }, new MirrorTry(done));
}

/** The copy's undici handler: its response is read to the end and dropped. */
class MirrorTry {
  constructor(private readonly done: () => void) {}
  onConnect(): void {}
  onHeaders(): boolean {
    return true;
  }
  onData(): boolean {
    return true;
  }
  onComplete(): void {
    this.done();
  }
  onError(): void {
    this.done();
  }
  onUpgrade(): void {}
}

function mirrorH2(m: MirrorRequest, c: Cluster, host: Host, done: () => void): void {
  const pool = c.http2Pool(host, m.conn);
  const send = (s: import('node:http2').ClientHttp2Session) => {
    const h = { ...m.h2!, ':method': m.method, ':path': m.path, ':authority': shadowAuthority(m.authority) };
    try {
      pool.use(s);
      const st = s.request(h as import('node:http2').OutgoingHttpHeaders, h2RequestOptions(m.body.length === 0));
      st.on('error', () => {});
      st.on('close', done);
      st.resume();
      for (const b of m.body) st.write(b);
      if (m.body.length > 0) st.end();
    } catch {
      done();
    }
  };
  const ready = pool.ready();
  if (ready) send(ready);
  else pool.session().then(send, done);
}
