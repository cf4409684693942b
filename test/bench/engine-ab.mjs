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

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let o = '';
    c.stdout.on('data', (d) => (o += d));
    c.on('error', reject);
    c.on('close', () => resolve(o));
  });
}

async function load(url, seconds) {
  if (!RATE) {
    const out = await run('wrk', ['-t1', `-c${C}`, `-d${seconds}s`, url]);
    return { n: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0), bad: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) };
  }
  const out = await run(process.execPath, [`${B}/dist/test/bench/pods/open-loop.js`, '--url', url, '--rate', String(RATE), '--duration', String(seconds), '--connections', String(C)]);
  const j = JSON.parse(out.trim().split('\n').pop());
  return { n: j.completed, bad: j.errors + j.non2xx };
}

const backend = spawn(process.execPath, [`${B}/test/fixtures/traffic/backend.js`], { env: { ...process.env, PORT: String(PORT) }, stdio: 'ignore' });
try {
  await new Promise((r) => setTimeout(r, 1000));
  const fake = { name: 'backend', port: PORT, server: undefined, count: 0 };
  const a = await new ha.Harness(ha.snapshot([fake], { routes: [], destinations: [] })).listen();
  const b = await new hb.Harness(hb.snapshot([fake], { routes: [], destinations: [] })).listen();
  async function round(h, label) {
    const cpu = process.cpuUsage();
    const { n, bad } = await load(`${h.url}/`, D);
    const used = process.cpuUsage(cpu);
    const v = (used.user + used.system) / Math.max(1, n);
    console.log(`${label} ${String(n).padStart(7)} req  ${v.toFixed(1)} µs/req${bad ? `  errors/non-2xx ${bad}` : ''}`);
    return v;
  }
  await load(`${a.url}/`, 1); // warm-up
  await load(`${b.url}/`, 1);
  const ratios = [];
  for (let i = 0; i < ROUNDS; i++) {
    let x;
    let y;
    if (i % 2) {
      y = await round(b, 'B');
      x = await round(a, 'A');
    } else {
      x = await round(a, 'A');
      y = await round(b, 'B');
    }
    ratios.push(y / x);
    console.log(`round ${i + 1}: B/A = ${(y / x).toFixed(2)}  (load ${(await import('node:os')).loadavg()[0].toFixed(1)})`);
  }
  ratios.sort((p, q) => p - q);
  console.log(`A ${A}\nB ${B}\n${RATE ? `open loop ${RATE} req/s` : `wrk -c${C}`}, ${D} s rounds: median B/A CPU per request ${ratios[Math.floor(ratios.length / 2)].toFixed(2)} (range ${ratios[0].toFixed(2)}–${ratios[ratios.length - 1].toFixed(2)})`);
  await a.close();
  await b.close();
} finally {
  backend.kill();
}
process.exit(0);
