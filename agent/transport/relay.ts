// Joins two duplexes both ways, as `a.pipe(b); b.pipe(a)` does — every chunk read from one
// is written to the other, a side whose peer's write buffer is full is paused until it
// drains, and a side's end ends its peer's writable side (half-close is carried) — for a
// fraction of what pipe() allocates per connection. Two pipes cost each held connection
// ~18 closures, six once() wrappers and their listener arrays (the heap of an agent holding
// 10,000 L4 connections: 120,000 onceWrapper functions); here the handlers are module
// functions shared by every connection, and each side carries its peer in one property and
// the bytes read from it in another (relayedBytes: an L4 flow's counts, with no listener of
// its own per chunk). A side may carry a tap (RelayTap): it sees each chunk read from the
// side before the peer gets it, and the side's end, and may hold the side's reading (an
// observer of HTTP/1.1 with too many requests awaiting their responses).
//
// Like pipe(), a relay handles no errors and closes nothing: whoever joins the two decides
// what an error or a close does to the other side (an L4 proxy resets it). Unlike pipe(), a
// side that is destroyed is not "unpiped": its peer is paused at the next chunk (the write
// fails and returns false) and waits for the owner's teardown, which closes both.
import type { Duplex } from 'node:stream';

const kPeer = Symbol('nodemesh.relayPeer');
const kRead = Symbol('nodemesh.relayRead');
const kTap = Symbol('nodemesh.relayTap');

/** What watches the bytes read from one side of a relay, without changing them. */
export interface RelayTap {
  /**
   * A chunk read from the side, before its peer is given it. False: the chunk is not passed
   * on, and the tap has taken the connection's end in hand (it refused what it read).
   */
  read(chunk: Buffer): boolean;
  /** the side ended (before its peer's writable side is ended) */
  ended(): void;
  /**
   * While true the side is not read on (it is paused after the chunk that set it, and a
   * drain of its peer does not resume it); the tap resumes the side itself when it lets go.
   */
  readonly holding: boolean;
}

type Joined = Duplex & { [kPeer]: Duplex; [kRead]: number; [kTap]: RelayTap | undefined };

function onData(this: Joined, chunk: Buffer): void {
  this[kRead] += chunk.length;
  const tap = this[kTap];
  if (tap === undefined) {
    if (!this[kPeer].write(chunk)) this.pause();
    return;
  }
  if (!tap.read(chunk)) return;
  if (!this[kPeer].write(chunk) || tap.holding) this.pause();
}

/** this side's write buffer drained: the peer, which writes into it, may read on (unless its tap holds it) */
function onDrain(this: Joined): void {
  const peer = this[kPeer] as Joined;
  if (peer[kTap]?.holding !== true) peer.resume();
}

function onEnd(this: Joined): void {
  this[kTap]?.ended();
  this[kPeer].end();
}

function join(from: Duplex, to: Duplex, tap: RelayTap | undefined): void {
  (from as Joined)[kPeer] = to;
  (from as Joined)[kRead] = 0;
  (from as Joined)[kTap] = tap;
  from.on('data', onData);
  from.on('drain', onDrain);
  // a side that ended before it was joined (a client's FIN read while its protocol was sniffed) ends its peer now
  if (from.readableEnded)
    process.nextTick(() => {
      tap?.ended();
      to.end();
    });
  else from.on('end', onEnd);
}

/** Joins `a` and `b` both ways (see above), with a tap on either side's reads. Each may be joined once. */
export function relay(a: Duplex, b: Duplex, tapA?: RelayTap, tapB?: RelayTap): void {
  join(a, b, tapA);
  join(b, a, tapB);
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
