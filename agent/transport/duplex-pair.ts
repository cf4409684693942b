// Two in-memory Duplex ends joined like the two ends of a TCP connection: what one writes
// the other reads, end() is a half-close (FIN), and destroying one end before both
// directions finished resets the other (its 'error' is ECONNRESET). Backpressure: a write
// completes only once the reader has room. (Node 22 has stream.duplexPair; Node 20 not.)
//
// Each end also keeps a socket's inactivity timer (setTimeout(ms) emits 'timeout' after ms
// without a byte read or written, as net.Socket does): the HTTP servers and pools laid over
// the same-node path rely on it for their idle timeouts and a server's keep-alive hint, as
// they do over TCP. One timer per end, refreshed on activity; none before setTimeout.
import { Duplex } from 'node:stream';

class End extends Duplex {
  peer!: End;
  private pendingWrite: (() => void) | undefined;
  private sawEnd = false;
  /** the inactivity timeout in ms, as net.Socket's `timeout` (0: none) */
  timeout = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor() {
    super({ allowHalfOpen: true });
    this.once('end', () => (this.sawEnd = true));
  }

  /** As net.Socket's: 'timeout' after `ms` without activity (0 turns it off); `cb` listens once. */
  setTimeout(ms: number, cb?: () => void): this {
    if (cb) {
      if (ms === 0) this.off('timeout', cb);
      else this.once('timeout', cb);
    }
    this.timeout = ms;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (ms > 0 && !this.destroyed) {
      this.timer = setTimeout(() => this.emit('timeout'), ms);
      this.timer.unref();
    }
    return this;
  }

  /** A byte moved through this end: its inactivity timer starts over. */
  private active(): void {
    this.timer?.refresh();
  }

  override _read(): void {
    const cb = this.peer.pendingWrite;
    this.peer.pendingWrite = undefined;
    cb?.();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.peer.destroyed) {
      cb(reset());
      return;
    }
    this.active();
    this.peer.active();
    if (this.peer.push(chunk)) cb();
    else this.pendingWrite = () => cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const pending = this.pendingWrite;
    this.pendingWrite = undefined;
    pending?.();
    // both directions done: the peer ends on its own once its reader drained what we sent
    const clean = this.writableFinished && this.sawEnd;
    if (!clean && !this.peer.destroyed) this.peer.destroy(reset());
    cb(err);
  }
}

function reset(): Error {
  return Object.assign(new Error('connection reset by peer'), { code: 'ECONNRESET' });
}

export function duplexPair(): [Duplex, Duplex] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
