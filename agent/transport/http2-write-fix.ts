// Node 20's Http2Stream corrupts the first bytes of a corked write batch that holds an empty
// chunk (found with ClientRequest, which ends a request with `write('', 'latin1')`: the
// request line arrived as garbage). HTTP/1.1 and HTTP/2 sessions laid over a Duplex that is
// not a socket (an HBONE CONNECT stream) write corked batches, so such a Duplex gets a
// _writev that drops empty chunks and hands strings over as Buffers. Sockets are left alone.
import net from 'node:net';
import type { Duplex } from 'node:stream';

type WriteReq = { chunk: Buffer | string; encoding: BufferEncoding };
type Writev = (chunks: WriteReq[], cb: (err?: Error | null) => void) => void;

export function withoutEmptyWrites<D extends Duplex>(d: D): D {
  const w = d as unknown as { _writev?: Writev };
  if (d instanceof net.Socket || typeof w._writev !== 'function') return d;
  const writev = w._writev.bind(d);
  w._writev = (chunks, cb) => {
    const kept: WriteReq[] = [];
    for (const c of chunks) {
      if (c.chunk.length === 0) continue;
      kept.push(typeof c.chunk === 'string' ? { chunk: Buffer.from(c.chunk, c.encoding), encoding: 'buffer' as BufferEncoding } : c);
    }
    if (kept.length === 0) cb();
    else writev(kept, cb);
  };
  return d;
}
