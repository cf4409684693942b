// The benchmark's TCP clients (run inside a lab pod), one JSON object on stdout each:
//
//   bulk HOST PORT SECONDS     sends as fast as the path takes for SECONDS, half-closes, and
//                              waits for the sink's count (backend.ts SINK_PORT): the bytes
//                              the far end received over the time until its count came back
//   connect HOST PORT N        N connections one after the other to an echo port: per
//                              connection the time to `connect` (the handshake with whoever
//                              answers the SYN: the proxy when captured) and to the first
//                              echoed byte (through the proxy's accept, original-destination
//                              lookup and upstream dial); p50/p90/p99 in ms
//   hold HOST PORT N           opens N connections to an echo port (at most 200 dialling at
//                              once), each proven end to end by one echoed byte, reports
//                              {"held": N} and keeps them until stdin ends, then closes them
//                              and reports {"closed": N}
import net from 'node:net';
import { summarize } from '../stats.js';

const [mode, host, portText, arg] = process.argv.slice(2);
const port = Number(portText);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: host!, port, noDelay: true, allowHalfOpen: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Writes one byte and resolves when it comes back. */
function ping(s: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('data', () => resolve());
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before the echo')));
    s.write('p');
  });
}

async function bulk(seconds: number): Promise<void> {
  const s = await connect();
  const chunk = Buffer.alloc(256 * 1024, 'b');
  const t0 = nowMs();
  const until = t0 + seconds * 1000;
  let sent = 0;
  const count = new Promise<bigint>((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => {
      const b = Buffer.concat(parts);
      if (b.length !== 8) reject(new Error(`the sink answered ${b.length} bytes, not its 8-byte count`));
      else resolve(b.readBigUInt64BE());
    });
    s.on('error', reject);
  });
  while (nowMs() < until) {
    sent += chunk.length;
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  const received = Number(await count);
  const seconds_ = (nowMs() - t0) / 1000;
  s.destroy();
  out({
    sentBytes: sent,
    receivedBytes: received,
    seconds: seconds_,
    mbPerSecond: received / 1e6 / seconds_,
    gbitPerSecond: (received * 8) / 1e9 / seconds_,
  });
}

async function connects(n: number): Promise<void> {
  const toConnect: number[] = [];
  const toEcho: number[] = [];
  let errors = 0;
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    try {
      const s = await connect();
      const t1 = nowMs();
      await ping(s);
      const t2 = nowMs();
      s.destroy();
      toConnect.push(t1 - t0);
      toEcho.push(t2 - t0);
    } catch {
      errors++;
    }
  }
  const pick = (xs: number[]) => {
    const s = summarize(xs);
    return { p50: s.p50, p90: s.p90, p99: s.p99, max: s.max };
  };
  out({ connections: n, errors, connectMs: pick(toConnect), firstByteMs: pick(toEcho) });
}

async function hold(n: number): Promise<void> {
  const held: net.Socket[] = [];
  let errors = 0;
  const reasons = new Map<string, number>();
  let next = 0;
  const t0 = nowMs();
  const worker = async () => {
    while (next < n) {
      next++;
      try {
        const s = await connect();
        await ping(s);
        s.on('error', () => {});
        held.push(s);
      } catch (err) {
        errors++;
        const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        reasons.set(why, (reasons.get(why) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(200, n) }, worker));
  out({ held: held.length, errors, reasons: Object.fromEntries(reasons), seconds: (nowMs() - t0) / 1000 });
  process.stdin.resume();
  await new Promise((r) => process.stdin.once('end', r));
  for (const s of held) s.destroy();
  out({ closed: held.length });
}

const run =
  mode === 'bulk'
    ? bulk(Number(arg))
    : mode === 'connect'
      ? connects(Number(arg))
      : mode === 'hold'
        ? hold(Number(arg))
        : Promise.reject(new Error(`usage: tcp-clients.js bulk|connect|hold HOST PORT ARG (got ${mode})`));
run.then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`tcp-clients ${mode}: ${(err as Error).message}`);
    process.exit(1);
  },
);
