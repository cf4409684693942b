// Benchmarks (not tests): throughput, latency and the node proxy's memory, through the
// mesh and direct, in the lab. `npm run bench` prints a table and writes
// dist/bench-results.json. Numbers depend on the machine; compare runs on the same one.
//   BENCH_DURATION=10 BENCH_CONNECTIONS=32 npm run bench
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { labDown, labExecCommand, labUp, type LabState } from '../../deploy/lab/lab.js';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { packagePath } from '../../common/paths.js';

const FIXTURES = packagePath('test', 'bench', 'fixtures');
const LAB = 'bench';
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);

interface WrkResult {
  requestsPerSecond: number;
  latencyMs: Record<'p50' | 'p90' | 'p99', number>;
  errors: number;
}

async function wrk(state: LabState, pod: string, url: string): Promise<WrkResult> {
  const cmd = await labExecCommand({
    name: state.name,
    target: pod,
    argv: ['wrk', '-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--latency', url],
  });
  const out = await new Promise<string>((resolve, reject) => {
    const c = spawn(cmd.argv[0]!, cmd.argv.slice(1), { env: cmd.env, stdio: ['ignore', 'pipe', 'inherit'] });
    let s = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (s += d));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`wrk exited ${code}: ${s}`))));
  });
  const ms = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    latencyMs: { p50: ms('50'), p90: ms('90'), p99: ms('99') },
    errors: Number(errors?.[1] ?? 0) + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
  };
}

async function main(): Promise<void> {
  let state: LabState;
  try {
    state = await labUp({ dir: FIXTURES, name: LAB });
  } catch (err) {
    await labDown({ name: LAB });
    throw err;
  }
  try {
    const backend = state.pods.find((p) => p.name === 'backend')!;
    const nodeA = state.nodes.find((n) => n.name === 'node-a')!;
    const direct = await wrk(state, 'bench/direct-load', `http://${backend.ip}:8080/`);
    const meshed = await wrk(state, 'bench/meshed-load', 'http://backend.bench/');
    const samples = await scrape(nodeA.agentAdmin);
    const rssMb = sumMetric(samples, 'nodemesh_agent_process_resident_memory_bytes') / 2 ** 20;
    const results = {
      machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
      settings: { durationSeconds: DURATION, connections: CONNECTIONS },
      direct,
      meshed,
      addedLatencyMs: {
        p50: meshed.latencyMs.p50 - direct.latencyMs.p50,
        p99: meshed.latencyMs.p99 - direct.latencyMs.p99,
      },
      nodeProxyRssMb: Math.round(rssMb * 10) / 10,
    };
    const row = (name: string, r: WrkResult) =>
      `${name.padEnd(8)} ${r.requestsPerSecond.toFixed(0).padStart(8)} req/s  p50 ${r.latencyMs.p50.toFixed(2)} ms  p90 ${r.latencyMs.p90.toFixed(2)} ms  p99 ${r.latencyMs.p99.toFixed(2)} ms  errors ${r.errors}`;
    process.stdout.write(
      [
        `wrk, ${CONNECTIONS} connections, ${DURATION} s, client on node-a, backend on node-b`,
        row('direct', direct),
        row('meshed', meshed),
        `added latency: p50 ${results.addedLatencyMs.p50.toFixed(2)} ms, p99 ${results.addedLatencyMs.p99.toFixed(2)} ms`,
        `node proxy (agent) RSS on node-a: ${results.nodeProxyRssMb} MB (one per node, vs one sidecar per pod)`,
      ].join('\n') + '\n',
    );
    await writeFile(packagePath('dist', 'bench-results.json'), JSON.stringify(results, null, 2));
  } finally {
    await labDown({ name: LAB });
  }
}

await main();
