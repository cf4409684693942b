// Joins two duplexes both ways, as `a.pipe(b); b.pipe(a)` does — every chunk read from one
// is written to the other, a side whose peer's write buffer is full is paused until it
// drains, and a side's end ends its peer's writable side (half-close is carried) — for a
// fraction of what pipe() allocates per connection. Two pipes cost each held connection
// ~18 closures, six once() wrappers and their listener arrays (the heap of an agent holding
// 10,000 L4 connections: 120,000 onceWrapper functions); here the handlers are module
// functions shared by every connection, and each side carries its peer in one property and
// the bytes read from it in another (relayedBytes: an L4 flow's counts, with no listener of
// its own per chunk).
//
// Like pipe(), a relay handles no errors and closes nothing: whoever joins the two decides
// what an error or a close does to the other side (an L4 proxy resets it). Unlike pipe(), a
// side that is destroyed is not "unpiped": its peer is paused at the next chunk (the write
// fails and returns false) and waits for the owner's teardown, which closes both.
import type { Duplex } from 'node:stream';

const kPeer = Symbol('nodemesh.relayPeer');
const kRead = Symbol('nodemesh.relayRead');

type Joined = Duplex & { [kPeer]: Duplex; [kRead]: number };

function onData(this: Joined, chunk: Buffer): void {
  this[kRead] += chunk.length;
  if (!this[kPeer].write(chunk)) this.pause();
}

/** this side's write buffer drained: the peer, which writes into it, may read on */
function onDrain(this: Joined): void {
  this[kPeer].resume();
}

function onEnd(this: Joined): void {
  this[kPeer].end();
}

function join(from: Duplex, to: Duplex): void {
  (from as Joined)[kPeer] = to;
  (from as Joined)[kRead] = 0;
  from.on('data', onData);
  from.on('drain', onDrain);
  // a side that ended before it was joined (a client's FIN read while its protocol was sniffed) ends its peer now
  if (from.readableEnded) process.nextTick(() => to.end());
  else from.on('end', onEnd);
}

/** Joins `a` and `b` both ways (see above). Each may be joined once. */
export function relay(a: Duplex, b: Duplex): void {
  join(a, b);
  join(b, a);
  // 'data' listeners start a stream flowing unless something paused it explicitly (a
  // protocol sniffer that gave its bytes back): pipe() resumes those too
  if (!b.writableNeedDrain) a.resume();
  else a.pause();
  if (!a.writableNeedDrain) b.resume();
  else b.pause();
}

/**
 * What the relay moved for a side: bytes read from it (passed to its peer) and bytes written to
 * it (read from its peer); zeros for a side no relay joined. For streams that keep no byte
 * counters (an HBONE CONNECT stream): transport/flow.ts reads these rather than listening to
 * every chunk itself.
 */
export function relayedBytes(side: Duplex): { read: number; written: number } {
  const j = side as Partial<Joined>;
  const peer = j[kPeer] as Partial<Joined> | undefined;
  return { read: j[kRead] ?? 0, written: peer?.[kRead] ?? 0 };
}
