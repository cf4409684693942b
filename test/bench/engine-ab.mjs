// Benchmark (not a test): two builds of the L7 engine in one process, HTTP/1.1 through each in
// alternating rounds against one backend (a child process), the engine's CPU per request of
// this process per round and the median B/A ratio of the rounds. On a shared machine this is
// steadier than comparing two `npm run bench:engine` processes: both builds see the same
// moments of the machine's load. Closed loop (wrk -c16) by default; RATE=N sends N req/s open
// loop (test/bench/pods/open-loop.ts), so both builds serve the same rate and a cost that
// falls with throughput does not favour the faster one.
//   node test/bench/engine-ab.mjs /path/to/other/checkout [this checkout]
//   (both built with npx tsc -p .; ROUNDS=8 D=4 C=16 RATE=1500)
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate, openLoop, run } from './ab-rounds.mjs';

const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const A = path.resolve(process.argv[2] ?? '');
const B = path.resolve(process.argv[3] ?? HERE);
if (!process.argv[2]) {
  console.error('usage: node test/bench/engine-ab.mjs A_CHECKOUT [B_CHECKOUT]');
  process.exit(2);
}
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const D = Number(process.env.D ?? 4);
const C = Number(process.env.C ?? 16);
const RATE = process.env.RATE ? Number(process.env.RATE) : 0;
const PORT = Number(process.env.PORT ?? 18480);

const ha = await import(`${A}/dist/test/helpers/l7-harness.js`);
const hb = await import(`${B}/dist/test/helpers/l7-harness.js`);

async function load(url, seconds) {
  if (!RATE) {
    const out = await run('wrk', ['-t1', `-c${C}`, `-d${seconds}s`, url]);
    return { n: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0), bad: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) };
  }
  return openLoop(B, url, RATE, seconds, C);
}

const backend = spawn(process.execPath, [`${B}/test/fixtures/traffic/backend.js`], { env: { ...process.env, PORT: String(PORT) }, stdio: 'ignore' });
try {
  await new Promise((r) => setTimeout(r, 1000));
  const fake = { name: 'backend', port: PORT, server: undefined, count: 0 };
  const a = await new ha.Harness(ha.snapshot([fake], { routes: [], destinations: [] })).listen();
  const b = await new hb.Harness(hb.snapshot([fake], { routes: [], destinations: [] })).listen();
  await load(`${a.url}/`, 1); // warm-up
  await load(`${b.url}/`, 1);
  await alternate(ROUNDS, `${a.url}/`, `${b.url}/`, (url) => load(url, D), `A ${A}\nB ${B}\n${RATE ? `open loop ${RATE} req/s` : `wrk -c${C}`}, ${D} s rounds`);
  await a.close();
  await b.close();
} finally {
  backend.kill();
}
process.exit(0);
