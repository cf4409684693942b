// Uses every core (issue 15): saturation req/s of the L7 and L4 paths with the agents at one
// proxy worker and at N (BENCH_WORKERS_N, default this machine's CPUs), interleaved over
// rounds, the agents restarted with the other count between runs (node-a first, so node-b's
// pooled inbound HBONE connection closes with it and its drain is short). The target:
// N workers reach ≥ 0.85 × N × one worker's req/s. Leaves the agents at BENCH_WORKERS (1).
import os from 'node:os';
import { labStartAgent, labStopAgent } from '../../../deploy/lab/lab.js';
import type { BenchLab } from '../bench-lab.js';
import { wrk } from '../load-tools.js';
import { cpuWindow } from '../proxies.js';
import { scenario, type ScenarioResult } from '../scenario.js';
import type { Settings, VariantId } from '../settings.js';
import { median } from '../stats.js';

const VARIANTS: VariantId[] = ['nm-l7', 'nm-l4'];
const CONCURRENCY = 64;

async function restartAgents(lab: BenchLab, workers: number): Promise<void> {
  for (const node of ['node-a', 'node-b']) await labStopAgent(lab.name, node);
  for (const node of ['node-a', 'node-b']) await labStartAgent(lab.name, node, { env: { NODEMESH_WORKERS: String(workers) } });
}

export function workersScenario(lab: BenchLab, s: Settings, log: (m: string) => void): Promise<ScenarioResult> {
  const n = Number(process.env.BENCH_WORKERS_N ?? os.availableParallelism());
  const seconds = s.saturation.tools.find((t) => t.tool === 'wrk')?.seconds ?? 2;
  const method = `wrk -t1 c${CONCURRENCY} for ${seconds} s through ${VARIANTS.join(' and ')}, the agents at 1 proxy worker and at ${n} (agent --workers), alternating per round (restarted between runs, then 1 s of warm-up); the proxies' CPU per 1,000 requests summed over each agent and its workers. Scaling = req/s at ${n} ÷ (${n} × req/s at 1) in the same round.`;
  return scenario('workers', `Proxy workers: 1 vs ${n}`, method, log, async (out) => {
    if (n < 2) {
      out.notes.push(`one CPU (BENCH_WORKERS_N=${n}): nothing to compare`);
      return;
    }
    const rounds: Record<string, Record<number, { rps: number; cpuMsPer1k: number; errors: number }>>[] = [];
    for (let round = 0; round < s.rounds; round++) {
      const r: Record<string, Record<number, { rps: number; cpuMsPer1k: number; errors: number }>> = {};
      for (const w of round % 2 ? [n, 1] : [1, n]) {
        await restartAgents(lab, w);
        for (const v of VARIANTS) {
          await wrk(lab, v, CONCURRENCY, 1); // warm: HBONE and upstream pools
          const cpu = await cpuWindow(lab, v);
          const res = await wrk(lab, v, CONCURRENCY, seconds);
          const { srcCpuS, dstCpuS } = await cpu.stop();
          (r[v] ??= {})[w] = { rps: res.rps, cpuMsPer1k: ((srcCpuS + dstCpuS) * 1e6) / Math.max(1, res.ok), errors: res.errors };
          log(`  round ${round + 1} ${v.padEnd(6)} ${w} worker(s): ${res.rps.toFixed(0)} req/s (${res.errors} errors), proxies ${r[v]![w]!.cpuMsPer1k.toFixed(0)} CPU-ms/1k`);
          if (res.ok === 0 || res.errors > 0.01 * res.ok) out.errors.push(`round ${round + 1} ${v} at ${w} worker(s): ${res.errors} errors, ${res.ok} answered`);
        }
      }
      rounds.push(r);
    }
    const scaling: Record<string, number> = {};
    for (const v of VARIANTS) {
      scaling[v] = median(rounds.map((r) => r[v]![n]!.rps / (n * r[v]![1]!.rps)));
      out.notes.push(`${v}: ${n} workers reach ${scaling[v]!.toFixed(2)} × ${n} × one worker's req/s (median of ${rounds.length} rounds; target ≥ 0.85)`);
      log(`  ${out.notes.at(-1)}`);
    }
    out.data = { workers: n, concurrency: CONCURRENCY, seconds, rounds, scaling };
    await restartAgents(lab, Number(process.env.BENCH_WORKERS ?? 1));
  });
}
