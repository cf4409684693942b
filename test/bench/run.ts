// The benchmark suite (not a test): `npm run bench`. nodemesh side by side with direct
// pod-to-pod traffic and with an HAProxy pair, in labs of its own (bench, bench-pods,
// bench-cp), traffic on lab addresses only, each scenario's variants interleaved over
// rounds. Writes JSON, Markdown and SVG charts (report.ts) and exits 1 only when something
// did not run (a missed target is a finding, not a failure).
//
//   npm run bench                       the full suite (under 15 minutes on 2 cores)
//   npm run bench -- --quick            every scenario briefly (~3 minutes), to check the suite;
//     (or BENCH_QUICK=1)
//                                       results go to dist/bench-results/
//   BENCH_ONLY=latency,pods …           only these scenarios (verify, latency, saturation,
//                                       bulk, capture, held-connections, workers, pods, control-plane)
//   BENCH_NOTE="…"                      a note printed at the top of the report
//   BENCH_OUT=DIR                       where the files go
//   BENCH_HAPROXY_THREADS=N             the HAProxy pair's threads (default 1, as the agent's one loop)
//   BENCH_WORKERS=N                     the agents' proxy workers (agent --workers; default 1)
//   BENCH_WORKERS_N=N                   the count the workers scenario compares with 1 (default: the
//                                       CPUs); it restarts the agents, so it runs last in its lab
//   BENCH_WORKERS_CORES=1               that scenario reads on the machine's cores too, not only under
//                                       its CPU quota (the default where there are ≥ 2N + 2 CPUs)
//   BENCH_RESTART_AFTER_HELD=1          an experiment: restart both agents after the held
//                                       connections (what they left in the agents, not in the kernel)
// Needs root, and haproxy besides the test tools (scripts/bootstrap.sh --bench).
// The engine alone, without the kernel: node dist/test/bench/l7-engine.js.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { labDown } from '../../deploy/lab/lab.js';
import { packagePath } from '../../common/paths.js';
import { BenchLab, MAIN_LAB } from './bench-lab.js';
import { removeBenchTempDirs, removeStaleBenchTempDirs, rssSettled } from './lab-exec.js';
import { pointReadme, writeReport, type RunReport } from './report.js';
import type { ScenarioResult } from './scenario.js';
import { CP_LAB, controlPlaneScenario } from './scenarios/control-plane.js';
import { latencyScenario, saturationScenario } from './scenarios/http.js';
import { PODS_LAB, podsScenario } from './scenarios/pods.js';
import { bulkScenario, captureScenario, heldConnectionsScenario } from './scenarios/tcp.js';
import { verifyScenario } from './scenarios/verify.js';
import { workersScenario } from './scenarios/workers.js';
import { settings } from './settings.js';
import { evaluateTargets } from './targets.js';

const MAIN_SCENARIOS = ['verify', 'latency', 'saturation', 'bulk', 'capture', 'held-connections', 'workers'] as const;
const ALL = [...MAIN_SCENARIOS, 'pods', 'control-plane'] as const;
const LABS = [MAIN_LAB, PODS_LAB, CP_LAB];

const quick = process.env.BENCH_QUICK === '1' || process.argv.includes('--quick');
const s = settings(quick);
const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((x) => x.trim())) : undefined;
const wanted = (id: string) => !only || only.has(id);
const log = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

function output(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.on('error', () => resolve(''));
    c.on('close', () => resolve(out.trim()));
  });
}

async function preflight(): Promise<string[]> {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('the suite needs root (network namespaces, cgroups, eBPF): run it as root');
  for (const [tool, args] of [
    ['haproxy', ['-v']],
    ['iptables', ['--version']],
    ['wrk', ['-v']],
    ['h2load', ['--version']],
    ['openssl', ['version']],
    ['curl', ['--version']],
  ] as const) {
    if (!(await output(tool, [...args]))) problems.push(`${tool} is missing: run \`bash scripts/bootstrap.sh --bench\``);
  }
  for (const u of [only ? [...only].filter((x) => !(ALL as readonly string[]).includes(x)) : []].flat())
    problems.push(`BENCH_ONLY names no scenario ${u} (scenarios: ${ALL.join(', ')})`);
  return problems;
}

async function machine(): Promise<Record<string, unknown>> {
  return {
    hostname: os.hostname(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    haproxy: (await output('haproxy', ['-v'])).split('\n')[0]?.replace(/ - https.*/, '') ?? 'haproxy ?',
    commit: (await output('git', ['-C', packagePath(), 'rev-parse', '--short', 'HEAD'])) || 'unknown',
  };
}

function failedScenario(id: string, why: string): ScenarioResult {
  return {
    id,
    title: id,
    method: '',
    status: 'failed',
    errors: [`${id}: ${why}`],
    seconds: 0,
    load: { start: os.loadavg(), end: os.loadavg() },
    cells: [],
    data: {},
    notes: [],
  };
}

/** Every lab of the suite down (also those a crashed run left): nothing of the bench stays behind. */
async function cleanup(): Promise<string[]> {
  const problems: string[] = [];
  for (const name of LABS) await labDown({ name }).catch((err: unknown) => problems.push(`lab down ${name}: ${(err as Error).message}`));
  // the labs' YAML, certificates and configs (a signal stops the scenarios before they remove them)
  await removeBenchTempDirs().catch((err: unknown) => problems.push(`temporary directories: ${(err as Error).message}`));
  return problems;
}

async function main(): Promise<number> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const load = { start: os.loadavg(), end: [] as number[] };
  const problems = await preflight();
  if (problems.length) {
    for (const p of problems) log(`✗ ${p}`);
    return 1;
  }
  // a suite killed before its cleanup (SIGKILL) left its temporary directories: gone now
  const stale = await removeStaleBenchTempDirs();
  if (stale.length)
    log(`removed ${stale.length} temporary director${stale.length === 1 ? 'y' : 'ies'} a killed run left (${stale.join(', ')})`);
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true;
      log(`${sig}: taking the labs down`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  log(
    `${quick ? 'quick' : 'full'} suite, ${s.rounds} rounds, load ${load.start.map((x) => x.toFixed(2)).join(' ')} on ${os.cpus().length} CPUs`,
  );
  const results: ScenarioResult[] = [];

  if (MAIN_SCENARIOS.some(wanted)) {
    let lab: BenchLab | undefined;
    try {
      const tl = performance.now();
      lab = await BenchLab.up({ haproxyThreads: Number(process.env.BENCH_HAPROXY_THREADS ?? 1), heldConnections: s.held.connections });
      log(`lab ${MAIN_LAB} up in ${((performance.now() - tl) / 1000).toFixed(0)} s`);
    } catch (err) {
      for (const id of MAIN_SCENARIOS.filter(wanted))
        results.push(failedScenario(id, `the lab ${MAIN_LAB} did not come up: ${(err as Error).message.split('\n')[0]}`));
    }
    if (lab) {
      try {
        // the paths are proven before anything is measured on them
        if (wanted('verify') || MAIN_SCENARIOS.some((x) => x !== 'verify' && wanted(x))) results.push(await verifyScenario(lab, log));
        // first: its memory readings start from agents no load has grown yet (after the load
        // scenarios RSS already held their high-water and hid part of each connection's cost)
        if (wanted('held-connections')) {
          results.push(await heldConnectionsScenario(lab, s, log));
          // what the 10,000 connections left (garbage, a grown heap) is collected before
          // anything is timed: a latency reading should not carry that collection's pauses.
          // Left to itself, V8's memory reducer took 80–120 s here to bring both agents back
          // (to 103/101 MB); a full collection asked for brings them there at once
          await lab.collectAgentGarbage();
          const settled = await rssSettled(Object.values(await lab.agentPids()), 120);
          log(
            settled.seconds === undefined
              ? "  agents' RSS still moving after 120 s"
              : `  agents' RSS settled in ${settled.seconds.toFixed(0)} s`,
          );
          if (process.env.BENCH_RESTART_AFTER_HELD === '1') {
            // the agents start afresh; the kernel keeps what the connections left (TIME_WAIT, conntrack)
            await lab.restartAgents();
            log('  agents restarted (BENCH_RESTART_AFTER_HELD)');
          }
        }
        if (wanted('latency')) results.push(await latencyScenario(lab, s, log));
        if (wanted('saturation')) results.push(await saturationScenario(lab, s, log));
        if (wanted('bulk')) results.push(await bulkScenario(lab, s, log));
        if (wanted('capture')) results.push(await captureScenario(lab, s, log));
        // last in this lab: it restarts the agents
        if (wanted('workers')) results.push(await workersScenario(lab, s, log));
      } finally {
        await lab
          .down()
          .catch((err: unknown) => results.push(failedScenario('cleanup', `lab down ${MAIN_LAB}: ${(err as Error).message}`)));
      }
    }
  }
  if (wanted('pods') && !interrupted) results.push(await podsScenario(s, log));
  if (wanted('control-plane') && !interrupted) results.push(await controlPlaneScenario(s, log));
  const leftovers = await cleanup();
  if (leftovers.length) results.push(failedScenario('cleanup', leftovers.join('; ')));

  load.end = os.loadavg();
  const failures = results.flatMap((r) => r.errors);
  const notes = process.env.BENCH_NOTE ? [process.env.BENCH_NOTE] : [];
  if (load.start[0]! > os.cpus().length * 0.5)
    notes.push(
      `The machine was busy when the run started (load ${load.start[0]!.toFixed(2)} on ${os.cpus().length} CPUs): compare ratios within rounds, not absolute numbers.`,
    );
  const rep: RunReport = {
    suite: 'nodemesh-bench',
    version: 1,
    mode: quick ? 'quick' : 'full',
    startedAt,
    seconds: (performance.now() - t0) / 1000,
    machine: await machine(),
    load,
    notes,
    status: failures.length ? 'failed' : 'ok',
    failures,
    targets: evaluateTargets(results),
    scenarios: results,
  };
  const resultsDir = packagePath('test', 'bench', 'results');
  const dir = process.env.BENCH_OUT ?? (quick || only ? packagePath('dist', 'bench-results') : resultsDir);
  const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_');
  const base = `${startedAt.slice(0, 16).replace(/:/g, '')}-${host}`;
  const files = await writeReport(rep, dir, base);
  if (path.resolve(dir) === resultsDir && (await pointReadme(packagePath('README.md'), 'test/bench/results', base, rep)))
    files.push(packagePath('README.md'));
  log(`wrote ${files.map((f) => path.relative(process.cwd(), f)).join(', ')}`);
  for (const t of rep.targets) log(`  target ${t.met === null ? 'n/a' : t.met ? 'met ' : 'MISSED'}  ${t.target}: ${t.measured}`);
  log(`${Math.round(rep.seconds)} s; ${failures.length ? `${failures.length} thing(s) did not run:` : 'everything ran'}`);
  for (const f of failures) log(`  ✗ ${f.split('\n')[0]}`);
  return failures.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    log(`crashed: ${(err as Error).stack ?? err}`);
    await cleanup();
    process.exit(1);
  },
);
