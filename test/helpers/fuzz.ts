// Bounded fuzzing for the unit suite: seeded cases (the same ones on every run unless
// NODEMESH_FUZZ_SEED says otherwise: `random` for a new seed, printed), a few seconds' worth
// by default and NODEMESH_FUZZ_RUNS=<n> cases per property for a long run; and what a
// listener did with bytes a hostile client sent: answered, closed, or hung.
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';
import net from 'node:net';
import tls from 'node:tls';

/** Cases per property: `base`, or $NODEMESH_FUZZ_RUNS. */
export function fuzzRuns(base: number): number {
  const runs = Number(process.env.NODEMESH_FUZZ_RUNS);
  return Number.isInteger(runs) && runs > 0 ? runs : base;
}

/** The run's seed: $NODEMESH_FUZZ_SEED (a number, or `random`), else a fixed one (npm test replays the same cases). */
export function fuzzSeed(): number {
  const env = process.env.NODEMESH_FUZZ_SEED;
  if (env === 'random') return (Date.now() ^ (Math.random() * 2 ** 31)) | 0;
  return env && Number.isFinite(Number(env)) ? Number(env) : 20261206;
}

/**
 * Runs `tryCase` over `fuzzRuns(base)` seeded samples of `arb`, `concurrency` at a time (a
 * listener meets many hostile clients at once; a case that hangs costs its bound, not the
 * suite's), and fails the test with every case that went wrong: what, the seed to replay it
 * (NODEMESH_FUZZ_SEED) and the case itself, to be turned into a named test.
 */
export async function fuzz<T>(
  t: ExecutionContext,
  arb: fc.Arbitrary<T>,
  tryCase: (c: T) => Promise<string | undefined>,
  opts: { base: number; concurrency?: number; show?: (c: T) => string },
): Promise<void> {
  const seed = fuzzSeed();
  const cases = fc.sample(arb, { numRuns: fuzzRuns(opts.base), seed });
  const failures: string[] = [];
  const show = opts.show ?? ((c: T) => fc.stringify(c).slice(0, 600));
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      const why = await tryCase(cases[i]!);
      if (why) failures.push(`case ${i}: ${why}\n    ${show(cases[i]!)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 8, cases.length) }, worker));
  t.log(`${cases.length} cases, seed ${seed}`);
  t.deepEqual(failures, [], `seed ${seed} (NODEMESH_FUZZ_SEED=${seed} replays it): ${failures.length} of ${cases.length} cases failed`);
}

/** Chunks as a reader sees them: printable ASCII kept, other bytes as \xNN, each chunk cut at 200 bytes. */
export function showChunks(chunks: readonly Uint8Array[]): string {
  return chunks
    .map((c) => {
      const b = Buffer.from(c);
      const text = [...b.subarray(0, 200)].map((x) => (x >= 0x20 && x < 0x7f && x !== 0x5c ? String.fromCharCode(x) : `\\x${x.toString(16).padStart(2, '0')}`)).join('');
      return `[${b.length}] ${text}${b.length > 200 ? '…' : ''}`;
    })
    .join(' | ');
}

export interface Poke {
  /** the listener closed the connection (FIN or RST) within the bound */
  closed: boolean;
  /** `settle` said the response was enough before the listener closed (e.g. its GOAWAY) */
  settled: boolean;
  /** everything it wrote back */
  response: Buffer;
  /** ms from the last byte sent (and the half-close) to the close, or to the bound */
  ms: number;
}

/**
 * Sends `chunks` on `socket` once connected, half-closes, and resolves what the peer did
 * within `boundMs`. A client that has said everything and closed its side leaves nothing
 * for a server to wait for: a peer still open at the bound has hung.
 */
export function poke(
  socket: net.Socket | tls.TLSSocket,
  chunks: readonly Uint8Array[],
  boundMs: number,
  opts: { connectEvent?: 'connect' | 'secureConnect'; settle?: (response: Buffer) => boolean } = {},
): Promise<Poke> {
  const connectEvent = opts.connectEvent ?? 'connect';
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let sentAt = performance.now();
    let done = false;
    const finish = (closed: boolean, settled = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ closed, settled, response: Buffer.concat(parts), ms: performance.now() - sentAt });
    };
    const timer = setTimeout(() => finish(false), boundMs + 5_000);
    socket.on('data', (d: Buffer) => {
      if (parts.reduce((n, p) => n + p.length, 0) < 1 << 16) parts.push(d);
      if (opts.settle?.(Buffer.concat(parts))) finish(false, true);
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.once(connectEvent, () => {
      for (const c of chunks) socket.write(c);
      socket.end();
      sentAt = performance.now();
      clearTimeout(timer);
      setTimeout(() => finish(false), boundMs).unref();
    });
  });
}

/** A TCP connection to host:port for poke(). */
export function tcpTo(host: string, port: number): net.Socket {
  return net.connect({ host, port });
}

// --- HTTP/2 frames (RFC 9113 §4.1) ---------------------------------------------------------

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const H2 = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;

/** One frame: 24-bit length, type, flags, reserved bit + 31-bit stream id, payload. */
export function h2Frame(type: number, flags: number, streamId: number, payload: Uint8Array, lengthOverride?: number): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE((lengthOverride ?? payload.length) & 0xffffff, 0, 3);
  head.writeUInt8(type & 0xff, 3);
  head.writeUInt8(flags & 0xff, 4);
  head.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([head, payload]);
}

/** The frame types in what an HTTP/2 server wrote (its first frame is its SETTINGS; no preface). */
export function h2FrameTypes(serverBytes: Buffer): number[] {
  const types: number[] = [];
  for (let o = 0; o + 9 <= serverBytes.length; o += 9 + serverBytes.readUIntBE(o, 3)) types.push(serverBytes[o + 3]!);
  return types;
}

/** The server sent a GOAWAY (type 7). */
export const sentGoaway = (serverBytes: Buffer): boolean => h2FrameTypes(serverBytes).includes(H2.GOAWAY);

/** HPACK literal header fields without indexing (RFC 7541 §6.2.2), names and values raw. */
export function hpackLiterals(headers: readonly [string, string][]): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string) => {
    const b = Buffer.from(s, 'latin1');
    return Buffer.concat([hpackInt(b.length, 7, 0x00), b]);
  };
  for (const [k, v] of headers) parts.push(Buffer.from([0x00]), str(k), str(v));
  return Buffer.concat(parts);
}

function hpackInt(n: number, prefixBits: number, firstByteFlags: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (n < max) return Buffer.from([firstByteFlags | n]);
  const out = [firstByteFlags | max];
  n -= max;
  while (n >= 128) {
    out.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
