// Two in-memory Duplex ends joined like the two ends of a TCP connection: what one writes
// the other reads, end() is a half-close (FIN), and destroying one end before both
// directions finished resets the other (its 'error' is ECONNRESET). Backpressure: a write
// completes only once the reader has room. (Node 22 has stream.duplexPair; Node 20 not.)
import { Duplex } from 'node:stream';

class End extends Duplex {
  peer!: End;
  private pendingWrite: (() => void) | undefined;
  private sawEnd = false;

  constructor() {
    super({ allowHalfOpen: true });
    this.once('end', () => (this.sawEnd = true));
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
    if (this.peer.push(chunk)) cb();
    else this.pendingWrite = () => cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
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
