// Benchmark (not a test): the L7 engine alone, on loopback, without the kernel or HBONE —
// wrk (HTTP/1.1 keep-alive) and h2load (HTTP/2) through the engine vs straight to the
// backend, so that a change to the request path can be measured on its own.
//   node dist/test/bench/l7-engine.js            (BENCH_DURATION=5 BENCH_CONNECTIONS=16 BENCH_WARMUP=2)
// Each engine line also gives the engine's CPU time per request (this process's), the number
// to compare before/after a change on a shared machine.
// The backend runs in a child process so it does not share the engine's event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { Harness, snapshot } from '../helpers/l7-harness.js';
import { packagePath } from '../../common/paths.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
/** BENCH_ENGINE_ONLY=1: skip the direct runs (before/after comparisons of the engine) */
const ENGINE_ONLY = process.env.BENCH_ENGINE_ONLY === '1';
/** BENCH_PORT_BASE: the backends' ports (two runs side by side need different ones) */
const PORT_BASE = Number(process.env.BENCH_PORT_BASE ?? 18080);
/**
 * BENCH_WARMUP: seconds of load through each engine before it is measured (default 2), so
 * that JIT compilation (and undici's WebAssembly parser, compiled on its first connection)
 * is not counted as the cost of a request: a node proxy runs for days.
 */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const BACKEND = packagePath('test', 'fixtures', 'traffic', 'backend.js');

function runTool(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}`))));
  });
}

/** The engine runs in this process: its CPU time per request is what a change to the request path moves (robust against a busy machine, unlike req/s). */
function cpuPerRequest(before: NodeJS.CpuUsage, requests: number): string {
  const used = process.cpuUsage(before);
  return `  engine CPU ${((used.user + used.system) / Math.max(1, requests)).toFixed(1)} µs/req`;
}

async function wrk(url: string): Promise<string> {
  if (WARMUP > 0) await runTool('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${WARMUP}s`, url]);
  const cpu = process.cpuUsage();
  const out = await runTool('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--latency', url]);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  const p50 = /^\s*50%\s+(\S+)/m.exec(out)?.[1];
  const p99 = /^\s*99%\s+(\S+)/m.exec(out)?.[1];
  const n = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  return `${Number(rps).toFixed(0).padStart(7)} req/s  p50 ${p50}  p99 ${p99}${cpuPerRequest(cpu, n)}`;
}

async function h2load(url: string): Promise<string> {
  if (WARMUP > 0) await runTool('h2load', ['-c', String(CONNECTIONS), '-m', '10', '-D', String(WARMUP), url]);
  const cpu = process.cpuUsage();
  const out = await runTool('h2load', ['-c', String(CONNECTIONS), '-m', '10', '-D', String(DURATION), url]);
  const rps = /finished in [^,]+, ([\d.]+) req\/s/.exec(out)?.[1];
  const lat = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  const ok = /requests: .* (\d+) succeeded, (\d+) failed/.exec(out);
  const n = Number(/requests: (\d+) total/.exec(out)?.[1] ?? 0);
  return `${Number(rps).toFixed(0).padStart(7)} req/s  mean ${lat?.[3]}  max ${lat?.[2]}  failed ${ok?.[2]}${cpuPerRequest(cpu, n)}`;
}

async function backend(port: number, h2: boolean): Promise<ChildProcess> {
  const script = h2
    ? `import http2 from 'node:http2'; http2.createServer((q, s) => s.end('{"ok":true}')).listen(${port});`
    : undefined;
  const c = script ? spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' }) : spawn(process.execPath, [BACKEND], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = require_connect(port, r);
      void s;
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return c;
}

function require_connect(port: number, done: (ok: boolean) => void) {
  const req = http.get({ port, host: '127.0.0.1', path: '/__stats' }, (res) => {
    res.resume();
    done(true);
  });
  req.on('error', () => done(false));
  return req;
}

const h1Port = PORT_BASE;
const h2Port = PORT_BASE + 1;
const b1 = await backend(h1Port, false);
const b2 = await backend(h2Port, true);
await new Promise((r) => setTimeout(r, 300));
const fake = (port: number) => ({ name: 'backend', port, server: undefined as never, count: 0 });
const h1 = await new Harness(snapshot([fake(h1Port)], { routes: [], destinations: [] })).listen();
const h2 = await new Harness(snapshot([fake(h2Port)], { routes: [], destinations: [] }, { portName: 'http2' }), 'http2').listen();
try {
  const lines = [
    `L7 engine on loopback, ${CONNECTIONS} connections, ${DURATION} s (engine, clients and backends share this machine's cores)`,
    ...(ENGINE_ONLY ? [] : [`HTTP/1.1 direct   ${await wrk(`http://127.0.0.1:${h1Port}/`)}`]),
    `HTTP/1.1 engine   ${await wrk(`${h1.url}/`)}`,
    ...(ENGINE_ONLY ? [] : [`HTTP/2   direct   ${await h2load(`http://127.0.0.1:${h2Port}/`)}`]),
    `HTTP/2   engine   ${await h2load(`${h2.url}/`)}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  await h1.close();
  await h2.close();
  b1.kill();
  b2.kill();
}
