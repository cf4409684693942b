// The HTTP scenarios of the main lab:
//   latency at fixed rates — the open-loop generator (pods/open-loop.ts) at 500, 1,000 and
//     5,000 req/s, 1 KiB responses over kept-alive connections; p50/p90/p99/p99.9 from each
//     request's intended send time, the generator's own lag, and the proxies' CPU per 1,000
//     requests over the same run (/proc/<pid>/stat of both agents or both haproxys);
//   saturation — wrk (HTTP/1.1), h2load (HTTP/2) and h2load posting gRPC unary calls, at
//     16 and 64 concurrent requests: req/s and the proxies' CPU per 1,000 requests.
// Every nodemesh run is checked to have gone over mutual TLS (proxies.ts mtlsProof).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BenchLab } from '../bench-lab.js';
import { lengthPrefixed } from '../grpc-method.js';
import { grpcCheck, h2load, openLoop, wrk, type SaturationResult } from '../load-tools.js';
import { cpuWindow, mtlsProof } from '../proxies.js';
import { inRounds } from '../rounds.js';
import { scenario, type ScenarioResult } from '../scenario.js';
import type { Settings, VariantId } from '../settings.js';

/** Runs that lost more than this share of their requests to errors did not measure what they should. */
const MAX_ERROR_SHARE = 0.01;

const fmtRate = (r: number) => r.toLocaleString('en-US');

export function latencyScenario(lab: BenchLab, s: Settings, log: (m: string) => void): Promise<ScenarioResult> {
  const method =
    'Open-loop generator in the client pod (a Node program: keep-alive connections, one request in flight each, FIFO when all are busy), ' +
    `latency from each request's intended send time (no coordinated omission), ${s.latency.warmupSeconds} s warm-up discarded; ` +
    "the proxies' CPU (both agents or both haproxy processes, /proc/<pid>/stat) over the run per 1,000 requests; added latency = variant − direct in the same round.";
  return scenario('latency', 'Latency at fixed rates', method, log, async (out) => {
    for (const { rate, seconds, variants } of s.latency.rates) {
      const connections = s.latency.connections(rate);
      const cells = await inRounds({
        condition: `${fmtRate(rate)} req/s`,
        variants,
        rounds: s.rounds,
        ratioOf: ['proxyCpuMsPer1k', 'p50', 'p99'],
        addedOf: ['p50', 'p90', 'p99', 'p999'],
        log,
        measure: async (v) => {
          const cpu = await cpuWindow(lab, v);
          const proof = await mtlsProof(lab, v);
          const r = await openLoop(lab, v, { rate, seconds, warmup: s.latency.warmupSeconds, connections });
          const { srcCpuS, dstCpuS } = await cpu.stop();
          const mtlsCounted = await proof.check();
          const failed = r.errors + r.non2xx;
          if (failed > MAX_ERROR_SHARE * r.scheduled)
            throw new Error(
              `${v} at ${rate} req/s: ${r.errors} connection errors and ${r.non2xx} non-2xx answers of ${r.scheduled} requests`,
            );
          // the CPU window also covers the warm-up's requests
          const requests = r.completed + Math.ceil(rate * s.latency.warmupSeconds);
          return {
            p50: r.latencyMs.p50,
            p90: r.latencyMs.p90,
            p99: r.latencyMs.p99,
            p999: r.latencyMs.p999,
            max: r.latencyMs.max,
            achievedRps: r.achievedRps,
            timeouts: r.timeouts,
            errors: failed,
            lagP50: r.lagMs.p50,
            lagP99: r.lagMs.p99,
            lagMax: r.lagMs.max,
            sendDelayP999: r.sendDelayMs.p999,
            generatorElu: r.eventLoopUtilization,
            generatorCpuS: r.cpuSeconds,
            srcCpuS,
            dstCpuS,
            proxyCpuMsPer1k: ((srcCpuS + dstCpuS) * 1e6) / requests,
            mtlsCounted,
          };
        },
      });
      out.cells.push(...cells);
      for (const c of cells)
        log(
          `  ${c.condition.padEnd(12)} ${c.variant.padEnd(15)} p50 ${fmt(c.metrics.p50?.median)} p99 ${fmt(c.metrics.p99?.median)} ms, lag p99 ${fmt(c.metrics.lagP99?.median)} ms, proxies ${fmt(c.metrics.proxyCpuMsPer1k?.median)} CPU-ms/1k`,
        );
    }
  });
}

const fmt = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(2));

export function saturationScenario(lab: BenchLab, s: Settings, log: (m: string) => void): Promise<ScenarioResult> {
  const method =
    `Closed-loop clients (${s.saturation.tools.map((t) => `${t.tool} ${t.seconds} s`).join(', ')} per run${s.saturation.warmupSeconds > 0 ? `, each right after ${s.saturation.warmupSeconds} s of the same load unmeasured` : ''}): wrk -t1 (HTTP/1.1, one request per connection at a time), h2load -m1 (HTTP/2, one stream per connection) and h2load posting a ` +
    'length-prefixed 16-byte gRPC message with content-type application/grpc to a grpc-js server (each path first proven with one grpc-js call); c = concurrent requests. ' +
    "req/s counts 2xx answers; the proxies' CPU per 1,000 of them from /proc/<pid>/stat.";
  return scenario('saturation', 'Saturation throughput', method, log, async (out) => {
    const requestFile = path.join(lab.dir, 'grpc-request.bin');
    await writeFile(requestFile, lengthPrefixed(Buffer.alloc(16, 'q')));
    for (const { tool, variants, concurrency, seconds } of s.saturation.tools) {
      if (tool === 'grpc') for (const v of variants) await grpcCheck(lab, v);
      for (const c of concurrency) {
        const name = tool === 'wrk' ? 'HTTP/1.1 wrk' : tool === 'h2load' ? 'HTTP/2 h2load' : 'gRPC h2load';
        const cells = await inRounds({
          condition: `${name} c${c}`,
          variants,
          rounds: s.rounds,
          ratioOf: ['rps', 'proxyCpuMsPer1k'],
          log,
          measure: async (v: VariantId) => {
            const run = (secs: number): Promise<SaturationResult> =>
              tool === 'wrk' ? wrk(lab, v, c, secs) : h2load(lab, v, c, secs, tool === 'grpc' ? { requestFile } : undefined);
            // outside the CPU window and the counts: only the measured run's requests are divided
            if (s.saturation.warmupSeconds > 0) await run(s.saturation.warmupSeconds);
            const cpu = await cpuWindow(lab, v);
            const proof = await mtlsProof(lab, v);
            const r = await run(seconds);
            const { srcCpuS, dstCpuS } = await cpu.stop();
            const mtlsCounted = await proof.check();
            if (r.ok === 0 || r.errors > MAX_ERROR_SHARE * r.ok)
              throw new Error(`${v} ${name} c${c}: ${r.errors} errors, ${r.ok} answered`);
            return {
              rps: r.rps,
              ok: r.ok,
              errors: r.errors,
              p50Ms: r.p50Ms,
              p99Ms: r.p99Ms,
              srcCpuS,
              dstCpuS,
              proxyCpuMsPer1k: ((srcCpuS + dstCpuS) * 1e6) / r.ok,
              mtlsCounted,
            };
          },
        });
        out.cells.push(...cells);
        for (const cell of cells)
          log(
            `  ${cell.condition.padEnd(18)} ${cell.variant.padEnd(15)} ${fmt(cell.metrics.rps?.median)} req/s, proxies ${fmt(cell.metrics.proxyCpuMsPer1k?.median)} CPU-ms/1k`,
          );
      }
    }
  });
}
