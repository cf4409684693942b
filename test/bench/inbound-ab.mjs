// Benchmark (not a test): two builds of the destination's inbound HTTP/1.1 side in one process
// (deliverInbound on a port declared HTTP, with an AuthorizationPolicy that reads every
// request: each request is parsed, authorised, counted and forwarded to the pod), in
// alternating rounds against one pod (a child process), at a fixed rate (open loop,
// test/bench/pods/open-loop.ts, over C keep-alive connections: C inbound connections, each
// with its pod connection). Reports this process's CPU per request per round and the median
// B/A ratio of the rounds; both builds see the same moments of a shared machine's load.
//   node test/bench/inbound-ab.mjs /path/to/other/checkout [this checkout]
//   (both built with npx tsc -p .; ROUNDS=8 D=4 C=16 RATE=1500)
import { spawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const A = path.resolve(process.argv[2] ?? '');
const B = path.resolve(process.argv[3] ?? HERE);
if (!process.argv[2]) {
  console.error('usage: node test/bench/inbound-ab.mjs A_CHECKOUT [B_CHECKOUT]');
  process.exit(2);
}
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const D = Number(process.env.D ?? 4);
const C = Number(process.env.C ?? 16);
const RATE = Number(process.env.RATE ?? 1500);
const PORT = Number(process.env.PORT ?? 18490);

const SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: server
  namespace: shop
spec:
  selector: {app: server}
  ports:
  - name: http
    port: 80
    targetPort: ${PORT}
`;

/** The inbound side of `build` on a loopback port: every accepted socket goes to its deliverInbound. */
async function inboundSide(build) {
  const { deliverInbound } = await import(`${build}/dist/agent/proxy/inbound-delivery.js`);
  const { SecurityIndex } = await import(`${build}/dist/agent/policy/authorization.js`);
  const { TcpConnector } = await import(`${build}/dist/agent/transport/connector.js`);
  const { compileYaml, podYaml, authorizationPolicy } = await import(`${build}/dist/test/helpers/config-yaml.js`);
  const snapshot = compileYaml([
    podYaml('server', { ns: 'shop', labels: { app: 'server' }, sa: 'server' }),
    SERVICE,
    authorizationPolicy('shop', 'no-delete', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }),
  ]);
  const destination = { ...snapshot.workloads.find((w) => w.name === 'server'), ip: '127.0.0.1' };
  const opts = { security: SecurityIndex.of(snapshot.security), service: snapshot.services.find((s) => s.name === 'server') };
  const connector = new TcpConnector(undefined, 5_000);
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    const c = { destination, port: PORT, sourceIp: socket.remoteAddress, sourcePort: socket.remotePort, sourcePrincipal: 'cluster.local/ns/shop/sa/client', security: 'mutual_tls' };
    void deliverInbound(socket, c, connector, opts).then((r) => r.delivered || socket.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

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
  const out = await run(process.execPath, [`${B}/dist/test/bench/pods/open-loop.js`, '--url', url, '--rate', String(RATE), '--duration', String(seconds), '--connections', String(C), '--warmup', '0']);
  const j = JSON.parse(out.trim().split('\n').pop());
  return { n: j.completed, bad: j.errors + j.non2xx };
}

const backend = spawn(process.execPath, [`${B}/test/fixtures/traffic/backend.js`], { env: { ...process.env, PORT: String(PORT) }, stdio: 'ignore' });
try {
  await new Promise((r) => setTimeout(r, 1000));
  const a = await inboundSide(A);
  const b = await inboundSide(B);
  async function round(side, label) {
    const cpu = process.cpuUsage();
    const { n, bad } = await load(side.url, D);
    const used = process.cpuUsage(cpu);
    const v = (used.user + used.system) / Math.max(1, n);
    console.log(`${label} ${String(n).padStart(7)} req  ${v.toFixed(1)} µs/req${bad ? `  errors/non-2xx ${bad}` : ''}`);
    return v;
  }
  await load(a.url, 2); // warm-up
  await load(b.url, 2);
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
    console.log(`round ${i + 1}: B/A = ${(y / x).toFixed(2)}  (load ${os.loadavg()[0].toFixed(1)})`);
  }
  ratios.sort((p, q) => p - q);
  console.log(`A ${A}\nB ${B}\nopen loop ${RATE} req/s over ${C} connections, ${D} s rounds: median B/A CPU per request ${ratios[Math.floor(ratios.length / 2)].toFixed(2)} (range ${ratios[0].toFixed(2)}–${ratios[ratios.length - 1].toFixed(2)})`);
  a.close();
  b.close();
} finally {
  backend.kill();
}
process.exit(0);
