// Benchmark (not a test): 10,000 concurrent idle connections from meshed pods into their
// node proxy, in the lab. Four pods on node-a each hold IDLE_CONNECTIONS / 4 connections to
// a declared HTTP port without sending a byte; meanwhile another pod's request is served.
// Then one pod asks for more than its share (the bound per source pod), and everything is
// released. Reports the node-a agent's resident memory and descriptors at each step, the
// cost per idle connection, and writes dist/bench-idle-results.json.
//   node dist/test/bench/idle-connections.js     (IDLE_CONNECTIONS=10000 IDLE_SECONDS=20)
// Idle connections on a declared HTTP port are closed after the request-head timeout (60 s):
// IDLE_SECONDS stays below it.
import { spawn } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { labDown, labExecCommand, labUp, type LabState } from '../../deploy/lab/lab.js';
import { labAgentPid } from '../../deploy/lab/lab-agents.js';
import { packagePath } from '../../common/paths.js';
import { DEFAULT_SOURCE_LIMITS } from '../../agent/transport/source-limits.js';
import { scrape, sumMetric } from '../../cli/prom-text.js';

const LAB = 'rc-idle';
const FIXTURE = packagePath('test', 'bench', 'idle');
const TOOL = packagePath('test', 'fixtures', 'abuse-tools', 'abuse-client.js');
const TOTAL = Number(process.env.IDLE_CONNECTIONS ?? 10_000);
const SECONDS = Number(process.env.IDLE_SECONDS ?? 20);
const PODS = ['crowd-1', 'crowd-2', 'crowd-3', 'crowd-4'];

interface Usage {
  rssMb: number;
  /** what the program holds on V8's heap (RSS keeps what the allocator has not given back) */
  heapUsedMb: number;
  fds: number;
}

async function usage(pid: number, admin: string): Promise<Usage> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  const heap = sumMetric(await scrape(admin), 'nodemesh_agent_nodejs_heap_size_used_bytes');
  const mb = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  return { rssMb: mb(kb * 1024), heapUsedMb: mb(heap), fds: (await readdir(`/proc/${pid}/fd`)).length };
}

/** The abuse tool in `pod`: `open` once its connections are open, `result` at its end. */
async function start<T>(state: LabState, pod: string, args: string[]): Promise<{ open: Promise<void>; result: Promise<T> }> {
  const cmd = await labExecCommand({ name: state.name, target: `shop/${pod}`, argv: ['node', TOOL, ...args] });
  const child = spawn(cmd.argv[0]!, cmd.argv.slice(1), { env: cmd.env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let opened: () => void = () => {};
  const open = new Promise<void>((r) => (opened = r));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (/^open \d+$/m.test(out)) opened();
  });
  const result = new Promise<T>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as T) : reject(new Error(`exited ${code}: ${out}`))));
  });
  return { open, result };
}

async function curl(state: LabState): Promise<{ status: string; ms: number }> {
  const cmd = await labExecCommand({ name: state.name, target: 'shop/client', argv: ['curl', '-sS', '-o', '/dev/null', '-m', '10', '-w', '%{http_code} %{time_total}', 'http://web.shop/'] });
  const out = await new Promise<string>((resolve) => {
    const c = spawn(cmd.argv[0]!, cmd.argv.slice(1), { env: cmd.env, stdio: ['ignore', 'pipe', 'inherit'] });
    let s = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (s += d));
    c.once('close', () => resolve(s));
  });
  const [status, seconds] = out.trim().split(' ');
  return { status: status ?? '', ms: Math.round(Number(seconds) * 1000 * 10) / 10 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  let state: LabState;
  try {
    state = await labUp({ dir: FIXTURE, name: LAB });
  } catch (err) {
    await labDown({ name: LAB });
    throw err;
  }
  try {
    // the agent process itself: the state file's 'agent' is its supervisor (the kubelet's part)
    const pid = await labAgentPid(LAB, 'node-a');
    if (pid === undefined) throw new Error('node-a: no running agent in the supervisor\'s record');
    const admin = state.nodes.find((n) => n.name === 'node-a')!.agentAdmin;
    await curl(state); // pools, HBONE, lazily loaded modules
    await sleep(1000);
    const baseline = await usage(pid, admin);
    const before = await curl(state);

    // the crowd: TOTAL idle connections over four pods
    const per = Math.ceil(TOTAL / PODS.length);
    const crowd = await Promise.all(PODS.map((p) => start<{ connected: number; reset: number }>(state, p, ['hold', 'web.shop', '80', String(per), String(SECONDS)])));
    await Promise.all(crowd.map((c) => c.open));
    await sleep(1000);
    const held = await usage(pid, admin);
    const during = await curl(state);
    const crowdResults = await Promise.all(crowd.map((c) => c.result));
    const connected = crowdResults.reduce((a, r) => a + r.connected, 0);

    // one pod past its share
    const max = DEFAULT_SOURCE_LIMITS.maxConnectionsPerSource;
    const greedy = await start<{ connected: number; reset: number }>(state, 'crowd-1', ['hold', 'web.shop', '80', String(max + 1000), '5']);
    await greedy.open;
    const greedyUsage = await usage(pid, admin);
    const greedyResult = await greedy.result;

    // released
    // descriptors go with the connections; the heap once V8 collects (not forced here)
    let after = await usage(pid, admin);
    for (let i = 0; i < 40 && (after.fds > baseline.fds * 1.1 || after.heapUsedMb > baseline.heapUsedMb * 1.5); i++) {
      await sleep(500);
      after = await usage(pid, admin);
    }
    const results = {
      machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
      settings: { idleConnections: TOTAL, pods: PODS.length, seconds: SECONDS, maxConnectionsPerSource: max },
      baseline,
      withIdleConnections: { ...held, connected },
      perIdleConnection: { kb: Math.round(((held.rssMb - baseline.rssMb) * 1024 * 10) / Math.max(1, connected)) / 10, fds: Math.round(((held.fds - baseline.fds) / Math.max(1, connected)) * 100) / 100 },
      request: { before, during },
      onePodPastItsShare: { asked: max + 1000, ...greedyResult, usage: greedyUsage },
      afterRelease: after,
    };
    process.stdout.write(
      [
        `node-a agent, ${connected} idle connections from ${PODS.length} pods (asked ${TOTAL}), held ${SECONDS} s`,
        `baseline          RSS ${baseline.rssMb} MB, heap used ${baseline.heapUsedMb} MB, ${baseline.fds} fds`,
        `with the crowd    RSS ${held.rssMb} MB, heap used ${held.heapUsedMb} MB, ${held.fds} fds  (${results.perIdleConnection.kb} KiB RSS and ${results.perIdleConnection.fds} fds per idle connection)`,
        `a normal request  before: ${before.status} in ${before.ms} ms; during: ${during.status} in ${during.ms} ms`,
        `one pod asks ${max + 1000}: ${greedyResult.connected} held, ${greedyResult.reset} reset (its share: ${max}); RSS ${greedyUsage.rssMb} MB, ${greedyUsage.fds} fds`,
        `after release     RSS ${after.rssMb} MB, heap used ${after.heapUsedMb} MB, ${after.fds} fds`,
      ].join('\n') + '\n',
    );
    await writeFile(packagePath('dist', 'bench-idle-results.json'), JSON.stringify(results, null, 2));
  } finally {
    await labDown({ name: LAB });
  }
}

await main();
