// Node 20's Http2Stream corrupts the first bytes of a corked write batch that holds an empty
// chunk (found with ClientRequest, which ends a request with `write('', 'latin1')`: the
// request line arrived as garbage). HTTP/1.1 and HTTP/2 sessions laid over a Duplex that is
// not a socket (an HBONE CONNECT stream) write corked batches, so such a Duplex gets a
// _writev that drops empty chunks and hands strings over as Buffers. Sockets are left alone.
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import { Duplex } from 'node:stream';

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

// Node's JSStreamSocket — the socket an HTTP/2 session gets when its transport is a Duplex
// that is not a socket (an HBONE CONNECT stream: the h2c server at the destination, the h2c
// pools at the source) — asserts in doWrite that no shutdown is in flight. But its own
// shutdown starts when the peer's FIN arrives (net.Socket ends its writable side) and
// finishes only when the wrapped stream's end() has flushed; a frame the session writes in
// between (a response arriving from the pod, a WINDOW_UPDATE) threw ERR_INTERNAL_ASSERTION
// out of a native callback and took the whole agent down. Found by the benchmark (h2load
// and gRPC through an HTTP/2 port); reproduced deterministically in
// test/unit/http2-write-fix.test.ts. The guard: a write that comes during the shutdown fails
// with EPIPE, as a write after shutdown(2) on a real socket does, and the session ends with
// that error; nothing else changes (checked against Node 20's js_stream_socket). If its
// private fields change, `jsStreamSocketGuard.installed` is false and the agent logs it at
// start (agent/agent.ts), and the unit test fails.

type JsStreamSocketProto = { doWrite(this: JsStreamSocketLike, req: object, bufs: Buffer[]): number };
type JsStreamSocketLike = { _handle: object | null; finishWrite(handle: object | null, errCode: number): void } & Record<symbol, unknown>;

/** The guard's state: whether it is in place, and how many writes it refused. */
export const jsStreamSocketGuard = { installed: false, writesRefused: 0 };

const UV_EPIPE = -os.constants.errno.EPIPE;

function installJsStreamSocketGuard(): void {
  // the class is internal: reach it through a session over a Duplex that goes nowhere
  const nowhere = () => new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
  const probe = http2.connect('http://guard.invalid', { createConnection: () => nowhere() as net.Socket });
  probe.on('error', () => {});
  const proto = Object.getPrototypeOf(probe.socket) as JsStreamSocketProto;
  probe.destroy();
  const JSStreamSocket = proto.constructor as (new (d: Duplex) => JsStreamSocketLike & { destroy(): void }) | undefined;
  if (typeof proto.doWrite !== 'function' || JSStreamSocket?.name !== 'JSStreamSocket') return;
  // its private fields, found by name on an instance; without both the guard stays out
  const sample = new JSStreamSocket(nowhere());
  const fields = Object.getOwnPropertySymbols(sample);
  sample.destroy();
  const kShutdown = fields.find((s) => s.description === 'kCurrentShutdownRequest');
  const kWrite = fields.find((s) => s.description === 'kCurrentWriteRequest');
  if (!kShutdown || !kWrite || sample[kShutdown] !== null) return;
  const doWrite = proto.doWrite;
  proto.doWrite = function (req, bufs) {
    if (this[kShutdown] != null && this[kWrite] === null) {
      jsStreamSocketGuard.writesRefused++;
      // as Node's own branch for a write while closing: hold the request, finish it later
      // (finishWrite skips it if doClose cancelled it first)
      this[kWrite] = req;
      const handle = this._handle;
      setImmediate(() => this.finishWrite(handle, UV_EPIPE));
      return 0;
    }
    return doWrite.call(this, req, bufs);
  };
  jsStreamSocketGuard.installed = true;
}

installJsStreamSocketGuard();
