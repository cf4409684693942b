// Benchmark (not a test): two builds of the destination's inbound HTTP/1.1 side in one process
// (deliverInbound on a port declared HTTP, with an AuthorizationPolicy that reads every
// request: each request is parsed, authorised, counted and forwarded to the pod), in
// alternating rounds against one pod (a child process), at a fixed rate (open loop,
// test/bench/pods/open-loop.ts, over C keep-alive connections: C inbound connections, each
// with its pod connection). Reports this process's CPU per request per round and the median
// B/A ratio of the rounds; both builds see the same moments of a shared machine's load.
//   node test/bench/inbound-ab.mjs /path/to/other/checkout [this checkout]
//   (both built with npx tsc -p .; ROUNDS=8 D=4 C=16 RATE=1500; POLICY=none: no
//   AuthorizationPolicy, the port parsed for its telemetry only)
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate, openLoop } from './ab-rounds.mjs';

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
const POLICY = process.env.POLICY !== 'none';

// the port declared HTTP (this checkout's helper writes the YAML for both builds)
const { httpServiceYaml } = await import(`${B}/dist/test/helpers/inbound-listener.js`);
const SERVICE = httpServiceYaml('server', PORT);

/** The inbound side of `build` on a loopback port: every accepted socket goes to its deliverInbound. */
async function inboundSide(build) {
  const { deliverInbound } = await import(`${build}/dist/agent/proxy/inbound-delivery.js`);
  const { SecurityIndex } = await import(`${build}/dist/agent/policy/authorization.js`);
  const { TcpConnector } = await import(`${build}/dist/agent/transport/connector.js`);
  const { compileYaml, podYaml, authorizationPolicy } = await import(`${build}/dist/test/helpers/config-yaml.js`);
  const snapshot = compileYaml([
    podYaml('server', { ns: 'shop', labels: { app: 'server' }, sa: 'server' }),
    SERVICE,
    ...(POLICY
      ? [
          authorizationPolicy('shop', 'no-delete', {
            selector: { matchLabels: { app: 'server' } },
            action: 'DENY',
            rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }],
          }),
        ]
      : []),
  ]);
  const destination = { ...snapshot.workloads.find((w) => w.name === 'server'), ip: '127.0.0.1' };
  const opts = { security: SecurityIndex.of(snapshot.security), service: snapshot.services.find((s) => s.name === 'server') };
  const connector = new TcpConnector(undefined, 5_000);
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    const c = {
      destination,
      port: PORT,
      sourceIp: socket.remoteAddress,
      sourcePort: socket.remotePort,
      sourcePrincipal: 'cluster.local/ns/shop/sa/client',
      security: 'mutual_tls',
    };
    void deliverInbound(socket, c, connector, opts).then((r) => r.delivered || socket.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

const backend = spawn(process.execPath, [`${B}/test/fixtures/traffic/backend.js`], {
  env: { ...process.env, PORT: String(PORT) },
  stdio: 'ignore',
});
try {
  await new Promise((r) => setTimeout(r, 1000));
  const a = await inboundSide(A);
  const b = await inboundSide(B);
  await openLoop(B, a.url, RATE, 2, C, 0); // warm-up
  await openLoop(B, b.url, RATE, 2, C, 0);
  await alternate(
    ROUNDS,
    a.url,
    b.url,
    (url) => openLoop(B, url, RATE, D, C, 0),
    `A ${A}\nB ${B}\nopen loop ${RATE} req/s over ${C} connections, ${D} s rounds`,
  );
  a.close();
  b.close();
} finally {
  backend.kill();
}
process.exit(0);
