// The open-loop load generator (runs inside a lab pod): HTTP/1.1 GETs at a fixed rate over
// several keep-alive connections, latency measured from each request's INTENDED send time
// (schedule.ts), so a slow response is charged to every request it held up, not hidden by a
// client that waited (no coordinated omission). Prints one JSON object.
//
//   node open-loop.js --url http://HOST:PORT/PATH --rate 1000 --duration 5 [--warmup 1]
//                     [--connections 16] [--host-header NAME] [--grace 5]
//
// A request goes out on an idle connection (one in flight per connection, no pipelining); when
// none is idle it waits in a FIFO, and that wait counts in its latency.
//
// The clock: a worker thread sleeps with Atomics.wait (futex, sub-millisecond) until the next
// intended time and wakes the main loop; Node's own timers are 1 ms coarse, which would add up
// to a millisecond of the generator's own lateness to every request. What lateness is left is
// reported as `lagMs`: when the main loop saw a request due, minus its intended time (its own
// event loop being busy shows there). `sendDelayMs` adds the wait for a free connection.
import net from 'node:net';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { OpenLoopSchedule } from '../schedule.js';
import { summarize } from '../stats.js';
import { Http1Responses } from '../http1-responses.js';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    rate: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '16' },
    'host-header': { type: 'string' },
    grace: { type: 'string', default: '5' },
  },
});
if (!a.url || !a.rate || !a.duration) {
  console.error('usage: open-loop.js --url http://HOST:PORT/PATH --rate N --duration S [--warmup S] [--connections N]');
  process.exit(2);
}
const url = new URL(a.url);
const rate = Number(a.rate);
const durationS = Number(a.duration);
const warmupS = Number(a.warmup);
const nConn = Number(a.connections);
const graceS = Number(a.grace);
const host = url.hostname;
const port = Number(url.port || 80);
const REQUEST = Buffer.from(
  `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${a['host-header'] ?? url.host}\r\nUser-Agent: nodemesh-bench-open-loop\r\n\r\n`,
);

const nowNs = () => Number(process.hrtime.bigint());

interface Conn {
  socket: net.Socket;
  /** the request in flight, or -1 */
  inflight: number;
  alive: boolean;
}

let sched: OpenLoopSchedule;
let warmupN = 0;
let latency: Float64Array;
let lag: Float64Array;
let sendDelay: Float64Array;
let due = 0;
let completed = 0;
let errors = 0;
let non2xx = 0;
let reconnects = 0;
// FIFO of due requests waiting for an idle connection
let queue: Int32Array;
let qHead = 0;
let qTail = 0;
const idle: Conn[] = [];
let finish: (() => void) | undefined;

function open(): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    const conn: Conn = { socket, inflight: -1, alive: true };
    const reader = new Http1Responses((status) => onResponse(conn, status));
    socket.once('connect', () => resolve(conn));
    socket.on('data', (d: Buffer) => {
      try {
        reader.push(d);
      } catch (err) {
        console.error(`open-loop: ${(err as Error).message}`);
        socket.destroy();
      }
    });
    socket.on('error', (err) => reject(err));
    socket.on('close', () => {
      conn.alive = false;
      const i = idle.indexOf(conn);
      if (i >= 0) idle.splice(i, 1);
      if (conn.inflight >= 0) {
        errors++;
        conn.inflight = -1;
      }
      if (sched && !stopped) {
        // keep the pool at its size: a closed connection is replaced
        reconnects++;
        open().then(
          (c) => {
            idle.push(c);
            pump(nowNs());
          },
          () => errors++,
        );
      }
    });
  });
}

let stopped = false;

function onResponse(conn: Conn, status: number): void {
  const t = nowNs();
  const i = conn.inflight;
  conn.inflight = -1;
  if (i >= 0) {
    latency[i] = t - sched.intendedNs(i);
    completed++;
    if (status < 200 || status > 299) non2xx++;
  }
  if (conn.alive) idle.push(conn);
  pump(t);
}

/** Makes every request due by `t` wait in the queue, then hands the queue to idle connections. */
function pump(t: number): void {
  const d = sched.dueAt(t);
  for (let i = due; i < d; i++) {
    lag[i] = t - sched.intendedNs(i);
    queue[qTail++] = i;
  }
  due = d;
  while (qHead < qTail && idle.length > 0) {
    const conn = idle.pop()!;
    const i = queue[qHead++]!;
    conn.inflight = i;
    sendDelay[i] = t - sched.intendedNs(i);
    conn.socket.write(REQUEST);
  }
  if (due === sched.total && qHead === qTail && completed + errors >= sched.total) finish?.();
}

/** The ticker: a thread that sleeps until each intended time and wakes the main loop. */
function ticker(startNs: number, total: number, rateRps: number): Worker {
  const code = `
    const { parentPort, workerData: w } = require('node:worker_threads');
    const cell = new Int32Array(new SharedArrayBuffer(4));
    const now = () => Number(process.hrtime.bigint());
    for (let next = 0; next < w.total; ) {
      const at = w.startNs + Math.floor((next * 1e9) / w.rate);
      const ms = (at - now()) / 1e6;
      if (ms > 0) Atomics.wait(cell, 0, 0, ms);
      parentPort.postMessage(0);
      // the next intended time after now (several may have passed while we slept or posted)
      const d = Math.floor(now() - w.startNs);
      next = Math.max(next + 1, Math.ceil(((d + 1) * w.rate) / 1e9));
    }`;
  return new Worker(code, { eval: true, workerData: { startNs, total, rate: rateRps } });
}

async function main(): Promise<void> {
  const conns = await Promise.all(Array.from({ length: nConn }, () => open()));
  idle.push(...conns);
  const startNs = nowNs() + 20e6;
  sched = new OpenLoopSchedule(rate, warmupS + durationS, startNs);
  warmupN = Math.min(sched.total, Math.ceil(rate * warmupS));
  latency = new Float64Array(sched.total).fill(NaN);
  lag = new Float64Array(sched.total).fill(NaN);
  sendDelay = new Float64Array(sched.total).fill(NaN);
  queue = new Int32Array(sched.total);
  const cpu0 = process.cpuUsage();
  let elu0 = performance.eventLoopUtilization();
  const worker = ticker(startNs, sched.total, rate);
  let measuring = false;
  worker.on('message', () => {
    const t = nowNs();
    if (!measuring && t >= sched.intendedNs(warmupN)) {
      measuring = true;
      elu0 = performance.eventLoopUtilization();
    }
    pump(t);
  });
  const done = new Promise<void>((resolve) => (finish = resolve));
  const deadline = new Promise<void>((resolve) => setTimeout(resolve, (warmupS + durationS + graceS) * 1000 + 20).unref());
  await Promise.race([done, deadline]);
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  stopped = true;
  await worker.terminate();
  for (const c of conns) c.socket.destroy();
  for (const c of idle) c.socket.destroy();

  const ms = (xs: Float64Array) => {
    const measured = xs
      .subarray(warmupN)
      .filter(Number.isFinite)
      .map((v) => v / 1e6);
    const s = summarize(measured);
    return { p50: s.p50, p90: s.p90, p99: s.p99, p999: s.p999, max: s.max };
  };
  let measuredDone = 0;
  for (let i = warmupN; i < sched.total; i++) if (Number.isFinite(latency[i]!)) measuredDone++;
  const scheduled = sched.total - warmupN;
  process.stdout.write(
    JSON.stringify({
      rate,
      durationS,
      connections: nConn,
      scheduled,
      completed: measuredDone,
      errors,
      non2xx,
      reconnects,
      timeouts: scheduled - measuredDone,
      achievedRps: measuredDone / durationS,
      latencyMs: ms(latency),
      lagMs: ms(lag),
      sendDelayMs: ms(sendDelay),
      eventLoopUtilization: elu.utilization,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    }) + '\n',
  );
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(`open-loop: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
