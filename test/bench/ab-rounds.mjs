// What the same-process A/B benchmarks share (engine-ab.mjs, inbound-ab.mjs): running a load
// generator as a child, and rounds that alternate the two builds (A first in odd rounds, B
// first in even ones), each measured as this process's CPU per completed request, with the
// median B/A ratio of the rounds.
import { spawn } from 'node:child_process';
import os from 'node:os';

/** Runs `cmd args` to its end; resolves its stdout (stderr goes to ours). */
export function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let o = '';
    c.stdout.on('data', (d) => (o += d));
    c.on('error', reject);
    c.on('close', () => resolve(o));
  });
}

/**
 * The open-loop generator of `build` (test/bench/pods/open-loop.ts) for `seconds` at `rate`
 * over `connections`, after its own warm-up (`warmup` s, its default when undefined; the
 * warm-up's requests are not in the count but their CPU is in the round's).
 */
export async function openLoop(build, url, rate, seconds, connections, warmup) {
  const args = [
    `${build}/dist/test/bench/pods/open-loop.js`,
    '--url',
    url,
    '--rate',
    String(rate),
    '--duration',
    String(seconds),
    '--connections',
    String(connections),
  ];
  if (warmup !== undefined) args.push('--warmup', String(warmup));
  const out = await run(process.execPath, args);
  const j = JSON.parse(out.trim().split('\n').pop());
  return { n: j.completed, bad: j.errors + j.non2xx };
}

/**
 * `rounds` rounds of `load(urlA)` and `load(urlB)` (load resolves {n, bad}); prints each
 * round and the median B/A CPU per request, preceded by `title`.
 */
export async function alternate(rounds, urlA, urlB, load, title) {
  async function round(url, label) {
    const cpu = process.cpuUsage();
    const { n, bad } = await load(url);
    const used = process.cpuUsage(cpu);
    const v = (used.user + used.system) / Math.max(1, n);
    console.log(`${label} ${String(n).padStart(7)} req  ${v.toFixed(1)} µs/req${bad ? `  errors/non-2xx ${bad}` : ''}`);
    return v;
  }
  const ratios = [];
  for (let i = 0; i < rounds; i++) {
    let x;
    let y;
    if (i % 2) {
      y = await round(urlB, 'B');
      x = await round(urlA, 'A');
    } else {
      x = await round(urlA, 'A');
      y = await round(urlB, 'B');
    }
    ratios.push(y / x);
    console.log(`round ${i + 1}: B/A = ${(y / x).toFixed(2)}  (load ${os.loadavg()[0].toFixed(1)})`);
  }
  ratios.sort((p, q) => p - q);
  console.log(
    `${title}: median B/A CPU per request ${ratios[Math.floor(ratios.length / 2)].toFixed(2)} (range ${ratios[0].toFixed(2)}–${ratios[ratios.length - 1].toFixed(2)})`,
  );
}
