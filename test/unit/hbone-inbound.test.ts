// HBONE, server side (15008), with real parts on loopback: node-b's real server with real
// TLS 1.3 and HTTP/2 against raw HTTP/2 clients, the HBONE connector and openssl s_client
// (test/helpers/hbone-world.ts). No root needed.
import test, { type ExecutionContext } from 'ava';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { Duplex } from 'node:stream';
import { eventually } from '../helpers/eventually.js';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { SecurityIndex } from '../../agent/policy/authorization.js';
import { HboneConnector } from '../../agent/hbone/client.js';
import { provenSourceWorkload } from '../../agent/hbone/server.js';
import { sniForPodIp } from '../../agent/hbone/protocol.js';
import type { WorkloadCertificate } from '../../agent/identity/identity.js';
import { run } from '../helpers/privileged.js';
import { authorizationPolicy, compileYaml, podYaml } from '../helpers/config-yaml.js';
import {
  connectClient,
  createPki,
  exchange,
  flagOf,
  id,
  NODE_B_IP,
  rawSession,
  req,
  status,
  workload,
  world,
  type Pki,
  type World,
} from '../helpers/hbone-world.js';
import { metricValue } from '../helpers/metrics.js';

let pki: Pki;
test.before(async () => {
  pki = await createPki();
});

test('a rotated workload certificate is what the server presents on the next handshake', async (t) => {
  const w = await world(t, pki);
  const presented = () =>
    new Promise<string>((resolve, reject) => {
      const s = tls.connect({
        host: NODE_B_IP,
        port: w.inbound.address.port,
        servername: sniForPodIp(w.web.ip),
        ALPNProtocols: ['h2'],
        ca: [pki.ca.certPem],
        cert: pki.certs.client.certChainPem,
        key: pki.certs.client.keyPem,
        checkServerIdentity: () => undefined,
      });
      s.once('secureConnect', () => {
        resolve(s.getPeerX509Certificate()!.serialNumber);
        s.destroy();
      });
      s.once('error', reject);
    });
  const before = await presented();
  t.is(before.toLowerCase(), new X509Certificate(pki.certs.web.certChainPem).serialNumber.toLowerCase());
  const rotated = await pki.ca.issue(id('shop', 'web'));
  w.serverIdentity.set(rotated);
  const after = await presented();
  t.is(after.toLowerCase(), new X509Certificate(rotated.certChainPem).serialNumber.toLowerCase());
});

test('a connection handed over after a graceful close began gets a GOAWAY as soon as its session is up; after a hard close it is cut', async (t) => {
  const w = await world(t, pki);
  // the primary's side of the handover: it accepts, the worker's server gets the socket
  const handedOver = net.createServer({ pauseOnConnect: true }, (socket) => w.inbound.accept(socket));
  await new Promise<void>((resolve) => handedOver.listen(0, NODE_B_IP, resolve));
  t.teardown(() => handedOver.close());
  const connect = () => connectClient(t, w, w.web.ip, (handedOver.address() as net.AddressInfo).port);
  const open = connect();
  await new Promise((resolve) => open.once('remoteSettings', resolve));
  t.is(w.inbound.connections, 1);

  const closing = w.inbound.close(true);
  const late = connect();
  const lateGoaway = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no GOAWAY within 5 s: the late session was served as an open one')), 5_000);
    late.once('goaway', (code: number) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  t.is(await lateGoaway, http2.constants.NGHTTP2_NO_ERROR, 'the late session is told to go away, as the open one was');
  await new Promise((resolve) => late.once('close', resolve));
  open.destroy();
  await closing;
  await eventually(() => w.inbound.connections === 0, 5_000, 'both sessions gone');

  await w.inbound.close(false);
  const cut = connect();
  let served = false;
  cut.once('remoteSettings', () => (served = true));
  await new Promise((resolve) => cut.once('close', resolve));
  t.false(served, 'after a hard close the handed-over connection is cut before any HTTP/2');
  t.is(w.inbound.connections, 0);
});

test('the inbound side answers only CONNECT: GET and POST get 400', async (t) => {
  const w = await world(t, pki);
  const session = await rawSession(t, w, w.web.ip);
  t.is(await status(session, { ':method': 'GET', ':path': '/', ':authority': `${w.web.ip}:${w.webPort}` }), 400);
  t.is(await status(session, { ':method': 'POST', ':path': '/', ':authority': `${w.web.ip}:${w.webPort}` }), 400);
  t.is(
    await status(session, { ':method': 'CONNECT', ':authority': `${w.web.ip}:${w.webPort}` }),
    200,
    'CONNECT on the same connection works',
  );
});

test('an authority that is not a meshed pod on this node is refused with 400, and nothing is dialled', async (t) => {
  const w = await world(t, pki);
  const session = await rawSession(t, w, w.web.ip);
  const connectTo = (authority: string) => status(session, { ':method': 'CONNECT', ':authority': authority });
  t.is(await connectTo(`${w.plain.ip}:8080`), 400, 'a pod that is not meshed');
  t.is(await connectTo(`${w.far.ip}:8080`), 400, 'a meshed pod on another node');
  t.is(await connectTo(`192.0.2.1:80`), 400, 'an address outside the mesh');
  t.is(await connectTo(`${w.db.ip}:${w.dbPort}`), 400, 'a local pod of another identity than the one this connection presented');
  t.is(await connectTo(`web.shop:80`), 400, 'not an address');
  t.is(await connectTo(`${w.web.ip}:${w.webPort}`), 200);
});

test('a handshake naming a pod this node does not serve is aborted', async (t) => {
  const w = await world(t, pki);
  const far = new HboneConnector({
    identity: w.clientIdentity,
    nodeIp: () => NODE_B_IP,
    port: w.inbound.address.port,
    connectTimeoutMs: 2000,
  });
  t.teardown(() => far.close());
  // node-b is asked to speak for a pod of node-c: it has nothing to present
  t.is(await flagOf(far.connect(req(w.client, w.far, 8080))), 'TLS_FAILURE');
  t.is(w.serverIdentity.requested.length, 0, 'no certificate was even looked up');
});

test('a pod that refuses the connection is 503 to the peer, CONNECT to the client', async (t) => {
  const w = await world(t, pki);
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, w.web.ip, r));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, port))), 'CONNECT');
  const session = await rawSession(t, w, w.web.ip);
  t.is(await status(session, { ':method': 'CONNECT', ':authority': `${w.web.ip}:${port}` }), 503);
});

/** web may not be reached by the client's identity (cluster.local/ns/shop/sa/client). */
function denyClient(): SecurityIndex {
  const noClient = authorizationPolicy('shop', 'no-client', {
    selector: { matchLabels: { app: 'web' } },
    action: 'DENY',
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/client'] } }] }],
  });
  return SecurityIndex.of(
    compileYaml([podYaml('web', { ns: 'shop', labels: { app: 'web' }, sa: 'web', node: 'node-b' }), noClient]).security,
  );
}

test('an AuthorizationPolicy denying the peer’s principal: the CONNECT gets 401, the client DENY; another principal passes', async (t) => {
  const w = await world(t, pki, { security: denyClient() });
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, w.webPort))), 'DENY');
  const session = await rawSession(t, w, w.web.ip);
  t.is(
    await status(session, { ':method': 'CONNECT', ':authority': `${w.web.ip}:${w.webPort}` }),
    401,
    'a valid certificate of a denied identity',
  );
  const other = await w.connector.connect(req(w.client2, w.web, w.webPort));
  t.is(await exchange(other, 'ok?'), 'echo:ok?');
});

test.serial('the destination reports the tunnel with both principals and mutual_tls', async (t) => {
  const w = await world(t, pki);
  const labels = {
    reporter: 'destination',
    source_principal: id('shop', 'client'),
    destination_workload: 'web',
    destination_principal: id('shop', 'web'),
    connection_security_policy: 'mutual_tls',
  };
  const before = await metricValue('istio_tcp_connections_closed_total', labels);
  const bytesBefore = await metricValue('istio_tcp_received_bytes_total', labels);
  const s = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(await exchange(s, '12345'), 'echo:12345');
  await eventually(async () => (await metricValue('istio_tcp_connections_closed_total', labels)) - before >= 1, 10_000, 'the closed tunnel to be counted').catch(() => {});
  t.is((await metricValue('istio_tcp_connections_closed_total', labels)) - before, 1);
  t.is((await metricValue('istio_tcp_received_bytes_total', labels)) - bytesBefore, 5);
});

test('the forwarded source address names the source workload only when that workload runs as the proven principal', (t) => {
  const client = workload('client', 'node-a', '10.99.0.2', 'client');
  const idx = { workloadByIp: (ip: string) => (ip === client.ip ? client : undefined) };
  const web = workload('web', 'node-b', '127.0.0.2', 'web');
  const c = { destination: web, port: 80, sourceIp: client.ip, sourcePort: 1, security: 'mutual_tls' as const };
  t.is(provenSourceWorkload({ ...c, sourcePrincipal: id('shop', 'client') }, idx), client);
  t.is(provenSourceWorkload({ ...c, sourcePrincipal: id('shop', 'intruder') }, idx), undefined);
  t.is(
    provenSourceWorkload({ ...c, sourcePrincipal: undefined, security: 'none' }, idx),
    client,
    'plaintext: the address seen is the source',
  );
});

// ---- openssl s_client against 15008: the handshake itself refuses a bad client ----
//
// TLS 1.3 ends the client's side of the handshake before the server has judged the client's
// certificate, so a refusal shows after the server's Finished: without a certificate
// OpenSSL sends the alert certificate_required; for a certificate that does not verify
// (another CA, expired) Node's TLS closes the connection at once, without an alert, and
// before a single record of its own — no session ticket, no HTTP/2 SETTINGS. An accepted
// client receives both.

// the HTTP/2 client preface, an empty SETTINGS frame, then GOAWAY so the server hangs up
const H2_PREFACE =
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + '\x00\x00\x00\x04\x00\x00\x00\x00\x00' + '\x00\x00\x08\x07\x00\x00\x00\x00\x00' + '\x00'.repeat(8);

interface SClient {
  out: string;
  /** TLS 1.3 inner content types (hex) of the records the server sent after its Finished */
  serverRecordsAfterHandshake: string[];
}

/**
 * openssl s_client's arguments for h2 over TLS 1.3 to web on node-b's 15008, the server
 * verified against the test CA; with `cert`, presenting it.
 */
async function sClientArgs(t: ExecutionContext, w: World, cert?: WorkloadCertificate): Promise<string[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemesh-hbone-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'ca.pem'), pki.ca.certPem);
  const args = [
    's_client',
    '-connect',
    `${NODE_B_IP}:${w.inbound.address.port}`,
    '-servername',
    sniForPodIp(w.web.ip),
    '-alpn',
    'h2',
    '-tls1_3',
  ];
  args.push('-CAfile', path.join(dir, 'ca.pem'), '-verify_return_error', '-quiet');
  if (cert) {
    await writeFile(path.join(dir, 'cert.pem'), cert.certChainPem);
    await writeFile(path.join(dir, 'key.pem'), cert.keyPem);
    args.push('-cert', path.join(dir, 'cert.pem'), '-key', path.join(dir, 'key.pem'));
  }
  return args;
}

async function sClient(t: ExecutionContext, w: World, cert?: WorkloadCertificate): Promise<SClient> {
  const args = [...(await sClientArgs(t, w, cert)), '-msg'];
  const r = await run('timeout', ['10', 'openssl', ...args], undefined, H2_PREFACE);
  t.not(r.code, 124, 'openssl s_client hung');
  const out = r.stdout + r.stderr;
  const lines = out.split('\n');
  const finished = lines.findIndex((l) => /^<<< TLS 1\.3, Handshake \[length [0-9a-f]+\], Finished/.test(l));
  t.true(finished > 0, 'the server completed its side of the handshake');
  const serverRecordsAfterHandshake: string[] = [];
  for (let i = finished + 1; i < lines.length - 1; i++) {
    if (/^<<< TLS 1\.3, InnerContent/.test(lines[i]!)) serverRecordsAfterHandshake.push(lines[i + 1]!.trim());
  }
  return { out, serverRecordsAfterHandshake };
}

test('openssl s_client with a valid SVID is accepted: h2, then the server speaks HTTP/2', async (t) => {
  const w = await world(t, pki);
  const r = await sClient(t, w, pki.certs.client);
  t.true(r.serverRecordsAfterHandshake.includes('17'), `the server sent application data (its SETTINGS): ${r.serverRecordsAfterHandshake}`);
  t.notRegex(r.out, /alert (certificate|unknown|bad|handshake)/);
});

test('openssl s_client without a client certificate is refused: alert certificate_required', async (t) => {
  const w = await world(t, pki);
  const r = await sClient(t, w);
  t.regex(r.out, /Alert \[length 0002\], fatal certificate_required/);
  t.false(r.serverRecordsAfterHandshake.includes('17'), 'no application data from the server');
});

for (const [what, cert] of [
  ['a certificate from another CA', () => pki.certs.clientFromOtherCa],
  ['an expired certificate', () => pki.certs.clientExpired],
] as const) {
  test(`openssl s_client with ${what} is refused: the server hangs up right after its handshake, sending nothing`, async (t) => {
    const w = await world(t, pki);
    const r = await sClient(t, w, cert());
    t.deepEqual(r.serverRecordsAfterHandshake, [], 'not a record from the server after its Finished');
    // hung up: a FIN (openssl: "unexpected eof"), or a reset when the client's first bytes
    // reached the server before it closed (read:errno=104, ECONNRESET; seen on a loaded machine)
    t.regex(r.out, /unexpected eof|read:errno=104/);
    t.is(w.inbound.connections, 0);
  });
}

test('openssl s_client with a valid SVID of an identity the AuthorizationPolicy denies: the handshake passes, the CONNECT is refused with 401', async (t) => {
  const w = await world(t, pki, { security: denyClient() });
  // openssl does the TLS (and presents the client's SVID); HTTP/2 is spoken over its stdio
  const sclient = spawn('openssl', await sClientArgs(t, w, pki.certs.client), { stdio: ['pipe', 'pipe', 'ignore'] });
  t.teardown(() => sclient.kill());
  const session = http2.connect('http://hbone', {
    createConnection: () => Duplex.from({ readable: sclient.stdout, writable: sclient.stdin }),
  });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  t.is(await status(session, { ':method': 'CONNECT', ':authority': `${w.web.ip}:${w.webPort}` }), 401);
});
