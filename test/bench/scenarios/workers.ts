// Uses every core (issue 15): saturation req/s of the L7 and L4 paths with the agents at one
// proxy worker and at N (BENCH_WORKERS_N, default this machine's CPUs), interleaved over
// rounds, the agents restarted with the other count between runs (node-a first, so node-b's
// pooled inbound HBONE connection closes with it and its drain is short). The target:
// N workers reach ≥ 0.85 × N × one worker's req/s. Leaves the agents at BENCH_WORKERS (1).
//
// Each count is measured after the same warm-up:
// - under a CPU quota (`quota`, cpu-quota.ts): each agent, with its workers, gets
//   BENCH_WORKER_SHARE (default 0.25) of a CPU per worker, so one worker gets one share and N
//   workers N shares. The agents, not the shared cores, are then the bottleneck, and the
//   ratio shows whether N workers turn N times the CPU into N times the requests (no shared
//   lock, no process that serializes them). This is the reading the target is taken from
//   where the machine has too few cores to spare N for the proxies; the report names it.
// - on the machine's cores as they are (`cores`), where it has cores to spare for both agents'
//   workers and the load (≥ 2N + 2 CPUs), or when asked (BENCH_WORKERS_CORES=1), or without a
//   v1 cpu hierarchy for the quota. On a small machine the load generator, the backends and
//   the other agent share the cores, so that reading says little about scaling, and leaving
//   it out there keeps the full suite within its time (~30 s less).
//
// The counts alternate per round as A B | B A | A B: the agents are restarted only where the
// count changes (4 restarts in 3 rounds, not 6), each count is read first after its restart
// in some rounds and after a round of the same count in others.
//
// Warm-up: a restarted agent's JIT is cold, and N workers each see 1/N of the warm-up's
// requests; 1 s of warm-up left the N-worker runs at half their steady rate (2,477 vs 6,593
// req/s in the run after). WARMUP_SECONDS of load per variant after each restart, before
// either reading.
//
// Settling: the warm-up runs without the quota, and the first run under it read low, more so
// at N workers than at one (two workers, 12 s of warm-up: the first 2-s run under the quota
// 9–32 % below the third in 10 of 10 restarts; one worker 1–11 % below in 3 of 4 restarts,
// 14 % above in one), so the reading measured the change of limit, not the count. Each
// reading now comes right after the same load under the same limit, unmeasured, as the
// saturation scenario's do.
import os from 'node:os';
import type { BenchLab } from '../bench-lab.js';
import { cpuQuotaGroup, type CpuQuotaGroup } from '../cpu-quota.js';
import { machineBusy } from '../lab-exec.js';
import { wrk } from '../load-tools.js';
import { cpuWindow } from '../proxies.js';
import { scenario, type ScenarioResult } from '../scenario.js';
import type { Settings, VariantId } from '../settings.js';
import { median } from '../stats.js';

const VARIANTS: VariantId[] = ['nm-l7', 'nm-l4'];
const CONCURRENCY = 64;
const WARMUP_SECONDS = 6;
const NODES = ['node-a', 'node-b'];
const MODES = ['cores', 'quota'] as const;
type Mode = (typeof MODES)[number];

interface Run {
  rps: number;
  cpuMsPer1k: number;
  errors: number;
  /** the share of the whole machine's CPU time that was busy during the run (0–1) */
  machineBusy: number;
}

/** Each agent with its `workers` worker processes (waits for them to be forked, at most 20 s). */
async function agentTrees(lab: BenchLab, workers: number): Promise<Record<string, number[]>> {
  const agents = await lab.agentPids();
  const out: Record<string, number[]> = {};
  for (const node of NODES) {
    const want = workers > 1 ? workers + 1 : 1;
    const deadline = Date.now() + 20_000;
    let tree = await lab.agentTree(node, agents[node]!);
    while (tree.length < want) {
      if (Date.now() > deadline) throw new Error(`${node}: ${tree.length - 1} of ${workers} proxy workers running after 20 s`);
      await new Promise((r) => setTimeout(r, 200));
      tree = await lab.agentTree(node, agents[node]!);
    }
    out[node] = tree;
  }
  return out;
}

export function workersScenario(lab: BenchLab, s: Settings, log: (m: string) => void): Promise<ScenarioResult> {
  const n = Number(process.env.BENCH_WORKERS_N ?? os.availableParallelism());
  const share = Number(process.env.BENCH_WORKER_SHARE ?? 0.25);
  const seconds = s.saturation.tools.find((t) => t.tool === 'wrk')?.seconds ?? 2;
  // --quick checks that the scenario runs, not what it reads
  const warmupSeconds = s.quick ? 2 : WARMUP_SECONDS;
  const coresWanted = os.availableParallelism() >= 2 * n + 2 || process.env.BENCH_WORKERS_CORES === '1';
  const method =
    `wrk -t1 c${CONCURRENCY} for ${seconds} s through ${VARIANTS.join(' and ')}, the agents at 1 proxy worker and at ${n} (agent --workers), alternating per round ` +
    `(A B | B A | A B; restarted where the count changes, then ${warmupSeconds} s of load per variant to warm them); each run right after ${seconds} s of the same load under the same limit, unmeasured; each count read with each agent ` +
    `(with its workers) under a CPU quota of ${share} CPU per worker (cgroup v1 cpu.cfs_quota_us: one worker ${share} CPU, ${n} workers ${n * share}), so the agents and not the shared cores ` +
    `are the bottleneck${coresWanted ? ", and on the machine's cores as they are" : ''}. The proxies' CPU per 1,000 requests summed over each agent and its workers. Scaling = req/s at ${n} ÷ (${n} × req/s at 1) in the same round.`;
  return scenario('workers', `Proxy workers: 1 vs ${n}`, method, log, async (out) => {
    if (n < 2) {
      out.notes.push(`one CPU (BENCH_WORKERS_N=${n}): nothing to compare`);
      return;
    }
    const groups: Record<string, CpuQuotaGroup> = {};
    try {
      for (const node of NODES) {
        const g = await cpuQuotaGroup(`nodemesh-bench-workers-${node}`);
        if (!g) {
          out.notes.push('no cgroup v1 cpu hierarchy on this machine: the quota reading is not taken (only the cores one)');
          break;
        }
        groups[node] = g;
      }
      const quota = Object.keys(groups).length === NODES.length;
      const modes: Mode[] = !quota ? ['cores'] : coresWanted ? [...MODES] : ['quota'];
      if (quota && !coresWanted)
        out.notes.push(
          `not read on the machine's cores as they are: ${os.availableParallelism()} CPUs are fewer than 2 × ${n} workers + 2 for the load (BENCH_WORKERS_CORES=1 reads it anyway)`,
        );
      const rounds: Record<Mode, Record<string, Record<number, Run>>>[] = [];
      let running: number | undefined;
      for (let round = 0; round < s.rounds; round++) {
        const r = {} as Record<Mode, Record<string, Record<number, Run>>>;
        for (const w of round % 2 ? [n, 1] : [1, n]) {
          if (w !== running) {
            await lab.restartAgents({ NODEMESH_WORKERS: String(w) });
            running = w;
            const trees = await agentTrees(lab, w);
            for (const node of Object.keys(groups)) {
              await groups[node]!.limit(undefined);
              await groups[node]!.add(trees[node]!);
            }
            for (const v of VARIANTS) await wrk(lab, v, CONCURRENCY, warmupSeconds); // JIT, HBONE and upstream pools
          }
          for (const mode of round % 2 ? [...modes].reverse() : modes) {
            for (const g of Object.values(groups)) await g.limit(mode === 'quota' ? w * share : undefined);
            for (const v of VARIANTS) {
              // the same load under this limit first, unmeasured (see the header)
              await wrk(lab, v, CONCURRENCY, seconds);
              const cpu = await cpuWindow(lab, v);
              const machine = machineBusy();
              const res = await wrk(lab, v, CONCURRENCY, seconds);
              const busy = machine.stop();
              const { srcCpuS, dstCpuS } = await cpu.stop();
              const run = {
                rps: res.rps,
                cpuMsPer1k: ((srcCpuS + dstCpuS) * 1e6) / Math.max(1, res.ok),
                errors: res.errors,
                machineBusy: busy,
              };
              ((r[mode] ??= {})[v] ??= {})[w] = run;
              log(
                `  round ${round + 1} ${mode.padEnd(5)} ${v.padEnd(6)} ${w} worker(s): ${run.rps.toFixed(0)} req/s (${run.errors} errors), proxies ${run.cpuMsPer1k.toFixed(0)} CPU-ms/1k, machine ${(100 * run.machineBusy).toFixed(0)} % busy`,
              );
              if (res.ok === 0 || res.errors > 0.01 * res.ok)
                out.errors.push(`round ${round + 1} ${mode} ${v} at ${w} worker(s): ${res.errors} errors, ${res.ok} answered`);
            }
          }
        }
        rounds.push(r);
      }
      const scaling = {} as Record<Mode, Record<string, number>>;
      for (const mode of modes) {
        scaling[mode] = {};
        for (const v of VARIANTS) {
          scaling[mode][v] = median(rounds.map((r) => r[mode][v]![n]!.rps / (n * r[mode][v]![1]!.rps)));
          out.notes.push(
            `${mode === 'quota' ? `under the quota (${share} CPU per worker)` : "on the machine's cores"}, ${v}: ${n} workers reach ${scaling[mode][v]!.toFixed(2)} × ${n} × one worker's req/s (median of ${rounds.length} rounds; target ≥ 0.85)`,
          );
          log(`  ${out.notes.at(-1)}`);
        }
        // whether the reading was the proxies' or the machine's limit
        const busy = (w: number) => median(rounds.flatMap((r) => VARIANTS.map((v) => r[mode][v]![w]!.machineBusy)));
        out.notes.push(
          `${mode === 'quota' ? 'under the quota' : "on the machine's cores"}, the whole machine's CPUs were busy ${(100 * busy(1)).toFixed(0)} % of the time at 1 worker and ${(100 * busy(n)).toFixed(0)} % at ${n} (medians over the runs)`,
        );
        log(`  ${out.notes.at(-1)}`);
      }
      out.data = { workers: n, share, concurrency: CONCURRENCY, seconds, warmupSeconds, modes, rounds, scaling };
    } finally {
      // the groups first: close() moves the agents still in them back to the root, unlimited
      for (const g of Object.values(groups)) await g.close().catch((err: Error) => out.errors.push(err.message));
      await lab.restartAgents({ NODEMESH_WORKERS: process.env.BENCH_WORKERS ?? '1' });
    }
  });
}
