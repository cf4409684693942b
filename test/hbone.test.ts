// HBONE between node proxies, with real parts on loopback: real TLS 1.3 with real X.509-SVIDs
// (a test CA), real HTTP/2 (node:http2), the real inbound server and pool, real TCP "pods"
// on 127.0.0.x, and openssl s_client as a foreign client. No root needed.
import test, { type ExecutionContext } from 'ava';
import { X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Service, Snapshot, Workload } from '../control/api/snapshot.js';
import { HboneConnector } from '../agent/hbone-outbound.js';
import { HboneInbound, provenSourceWorkload } from '../agent/hbone-inbound.js';
import { sniForPodIp, podIpFromSni, parseForwardedFor, svidSpiffeId } from '../agent/hbone-tls.js';
import { deliverInbound } from '../agent/inbound-delivery.js';
import type { InboundDeliver } from '../agent/inbound-capture.js';
import { meshIndex } from '../agent/mesh-index.js';
import { MeshConnector } from '../agent/mesh-connector.js';
import { registry } from '../agent/metrics.js';
import { UpstreamError, type UpstreamConnector, type UpstreamRequest } from '../agent/upstream.js';
import { compileSnapshot } from '../control/compiler.js';
import { run } from './helpers/privileged.js';
import { FixedIdentityProvider, TestCa } from './helpers/test-ca.js';
import type { WorkloadCertificate } from '../agent/identity.js';
import { parseYamlFile } from '../control/source-files.js';
import { SecurityIndex } from '../agent/authorization.js';
import { compileYaml, podYaml } from './helpers/security-config.js';
import { ResourceStore } from '../control/store.js';

const TD = 'cluster.local';
const id = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;
const NODE_B_IP = '127.0.0.10';

interface Pki {
  ca: TestCa;
  otherCa: TestCa;
  certs: Record<
    'client' | 'client2' | 'web' | 'db' | 'far' | 'webFromOtherCa' | 'clientFromOtherCa' | 'clientExpired',
    WorkloadCertificate
  >;
}
let pki: Pki;

test.before(async () => {
  const [ca, otherCa] = await Promise.all([TestCa.create('nodemesh test CA'), TestCa.create('some other CA')]);
  const hourAgo = new Date(Date.now() - 3600_000);
  const [client, client2, web, db, far, webFromOtherCa, clientFromOtherCa, clientExpired] = await Promise.all([
    ca.issue(id('shop', 'client')),
    ca.issue(id('shop', 'client2')),
    ca.issue(id('shop', 'web')),
    ca.issue(id('shop', 'db')),
    ca.issue(id('shop', 'far')),
    otherCa.issue(id('shop', 'web')),
    otherCa.issue(id('shop', 'client')),
    ca.issue(id('shop', 'client'), { notBefore: new Date(hourAgo.getTime() - 3600_000), notAfter: hourAgo }),
  ]);
  pki = { ca, otherCa, certs: { client, client2, web, db, far, webFromOtherCa, clientFromOtherCa, clientExpired } };
});

function workload(name: string, node: string, ip: string, sa: string, meshed = true): Workload {
  return {
    uid: `shop/${name}`,
    name,
    namespace: 'shop',
    node,
    ip,
    serviceAccount: sa,
    labels: { app: name },
    meshed,
    spiffeId: id('shop', sa),
  };
}

/** A TCP "pod": answers every chunk with `echo:<chunk>`, ends when its peer ends. */
async function pod(t: ExecutionContext, ip: string): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    seen.push(`${s.remoteAddress}`);
    s.on('data', (d) => s.write(`echo:${d}`));
    s.on('end', () => s.end());
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, ip, r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, seen };
}

const plainTcp: UpstreamConnector = {
  connect: (req) =>
    new Promise((resolve, reject) => {
      const s = net.connect({ host: req.ip, port: req.port, allowHalfOpen: true });
      s.once('connect', () => resolve(s));
      s.once('error', (err) => reject(new UpstreamError('UF', err.message)));
    }),
};

interface World {
  snapshot: Snapshot;
  client: Workload;
  client2: Workload;
  web: Workload;
  db: Workload;
  plain: Workload;
  far: Workload;
  webPort: number;
  dbPort: number;
  inbound: HboneInbound;
  serverIdentity: FixedIdentityProvider;
  clientIdentity: FixedIdentityProvider;
  connector: HboneConnector;
  deliver: InboundDeliver;
}

async function world(
  t: ExecutionContext,
  opts: { maxStreams?: number; idleMs?: number; serverMaxStreams?: number; security?: SecurityIndex } = {},
): Promise<World> {
  const [webPod, dbPod] = await Promise.all([pod(t, '127.0.0.2'), pod(t, '127.0.0.3')]);
  const client = workload('client', 'node-a', '10.99.0.2', 'client');
  const client2 = workload('client2', 'node-a', '10.99.0.3', 'client2');
  const web = workload('web', 'node-b', '127.0.0.2', 'web');
  const db = workload('db', 'node-b', '127.0.0.3', 'db');
  const plain = workload('plain', 'node-b', '127.0.0.4', 'default', false);
  const far = workload('far', 'node-c', '127.0.0.5', 'far');
  const webSvc: Service = {
    name: 'web',
    namespace: 'shop',
    hostname: 'web.shop.svc.cluster.local',
    clusterIp: '10.96.0.20',
    ports: [
      {
        name: 'tcp',
        port: 80,
        targetPort: webPod.port,
        protocol: 'TCP',
        appProtocol: '',
        endpoints: [{ ip: web.ip, port: webPod.port, workload: web.uid, node: 'node-b' }],
      },
    ],
  };
  const snapshot: Snapshot = {
    version: 1,
    generatedAt: new Date().toISOString(),
    workloads: [client, client2, web, db, plain, far],
    services: [webSvc],
    nodes: [
      { name: 'node-a', ip: '127.0.0.9' },
      { name: 'node-b', ip: NODE_B_IP },
      { name: 'node-c', ip: '127.0.0.11' },
    ],
    routing: {} as Snapshot['routing'],
    security: {} as Snapshot['security'],
    trustBundle: [pki.ca.certPem],
  };
  const serverIdentity = new FixedIdentityProvider([pki.ca.certPem], [pki.certs.web, pki.certs.db, pki.certs.far]);
  const clientIdentity = new FixedIdentityProvider([pki.ca.certPem], [pki.certs.client, pki.certs.client2]);
  // the inbound delivery as the agent binds it (here without a policy: allow, PERMISSIVE)
  const deliver: InboundDeliver = (stream, c) => deliverInbound(stream, c, plainTcp, opts.security ? { security: opts.security } : {});
  const inbound = new HboneInbound({
    host: NODE_B_IP,
    port: 0,
    node: 'node-b',
    identity: serverIdentity,
    index: () => meshIndex(snapshot),
    deliver,
    ...(opts.serverMaxStreams ? { maxConcurrentStreams: opts.serverMaxStreams } : {}),
  });
  await inbound.listen();
  const connector = new HboneConnector({
    identity: clientIdentity,
    nodeIp: (w) => meshIndex(snapshot).nodeIp(w.node),
    port: inbound.address.port,
    connectTimeoutMs: 3_000,
    pool: { maxStreamsPerConnection: opts.maxStreams ?? 100, idleTimeoutMs: opts.idleMs ?? 60_000 },
  });
  t.teardown(async () => {
    connector.close();
    await inbound.close();
  });
  return {
    snapshot,
    client,
    client2,
    web,
    db,
    plain,
    far,
    webPort: webPod.port,
    dbPort: dbPod.port,
    inbound,
    serverIdentity,
    clientIdentity,
    connector,
    deliver,
  };
}

function req(source: Workload | undefined, destination: Workload, port: number, extra: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { source, sourceAddress: source?.ip ?? '10.99.0.99', sourcePort: 40000, ip: destination.ip, port, destination, ...extra };
}

/** Writes `msg`, half-closes, and collects everything until the far end ends. */
function exchange(s: Duplex, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.once('end', () => resolve(out));
    s.once('error', reject);
    s.end(msg);
  });
}

async function flagOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof UpstreamError) return err.flag;
    throw err;
  }
  throw new Error('expected the connect to fail');
}

async function until(what: string, pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const data = await m.get();
  return data.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((a, v) => a + v.value, 0);
}

test('the SNI names a pod IP in a hostname and decodes back; other names decode to nothing', (t) => {
  t.is(sniForPodIp('10.244.1.3'), '10-244-1-3.pod.nodemesh.internal');
  t.is(podIpFromSni('10-244-1-3.pod.nodemesh.internal'), '10.244.1.3');
  t.is(podIpFromSni(sniForPodIp('fd00::1')), 'fd00::1');
  t.is(podIpFromSni('10-244-1-300.pod.nodemesh.internal'), undefined);
  t.is(podIpFromSni('web.shop.svc.cluster.local'), undefined);
  t.is(podIpFromSni(undefined), undefined);
  t.deepEqual(parseForwardedFor('for="10.244.0.5:41234"'), { ip: '10.244.0.5', port: 41234 });
  t.deepEqual(parseForwardedFor('for="[fd00::5]:80";proto=https'), { ip: 'fd00::5', port: 80 });
});

test('an SVID has exactly one SPIFFE URI SAN; a certificate with two is not one', async (t) => {
  t.deepEqual(svidSpiffeId(new X509Certificate(pki.certs.web.certChainPem)), { id: id('shop', 'web') });
  const two = await pki.ca.issue(id('shop', 'web'), { extraUris: [id('shop', 'db')] });
  const r = svidSpiffeId(new X509Certificate(two.certChainPem));
  t.true('error' in r && /carries 2 URI SANs/.test(r.error), JSON.stringify(r));
});

test('a CONNECT tunnel carries bytes both ways, with half-close, to the pod its authority names', async (t) => {
  const w = await world(t);
  const s = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(await exchange(s, 'hello'), 'echo:hello');
  const s2 = await w.connector.connect(req(w.client, w.db, w.dbPort));
  t.is(await exchange(s2, 'db?'), 'echo:db?');
  t.is(w.clientIdentity.requested[0], id('shop', 'client'), 'the client certificate is the SOURCE workload’s');
  t.deepEqual(
    [...new Set(w.serverIdentity.requested)].sort(),
    [id('shop', 'db'), id('shop', 'web')],
    'the server presented each destination’s identity',
  );
});

test('many streams share one connection; another source identity gets its own', async (t) => {
  const w = await world(t);
  const streams = await Promise.all(Array.from({ length: 8 }, () => w.connector.connect(req(w.client, w.web, w.webPort))));
  t.is(w.inbound.connections, 1, 'eight concurrent CONNECTs rode one HBONE connection');
  t.is(w.connector.pool.stats().streams, 8);
  const other = await w.connector.connect(req(w.client2, w.web, w.webPort));
  t.is(w.inbound.connections, 2, 'a different source identity never shares a connection');
  const replies = await Promise.all([...streams, other].map((s, i) => exchange(s, `m${i}`)));
  t.deepEqual(
    replies,
    Array.from({ length: 9 }, (_, i) => `echo:m${i}`),
  );
});

test('a connection takes at most maxStreamsPerConnection streams, then another is opened', async (t) => {
  const w = await world(t, { maxStreams: 2 });
  const streams = await Promise.all(Array.from({ length: 5 }, () => w.connector.connect(req(w.client, w.web, w.webPort))));
  t.is(w.inbound.connections, 3);
  t.deepEqual(Object.values(w.connector.pool.stats().byKey)[0]!.sort(), [1, 2, 2]);
  await Promise.all(streams.map((s) => exchange(s, 'x')));
});

test("the peer's SETTINGS_MAX_CONCURRENT_STREAMS bounds a connection too", async (t) => {
  const w = await world(t, { serverMaxStreams: 3 });
  const streams = await Promise.all(Array.from({ length: 3 }, () => w.connector.connect(req(w.client, w.web, w.webPort))));
  // the first connection knows the server's limit now; the next streams go elsewhere
  const more = await Promise.all(Array.from({ length: 2 }, () => w.connector.connect(req(w.client, w.web, w.webPort))));
  t.is(w.inbound.connections, 2);
  await Promise.all([...streams, ...more].map((s) => exchange(s, 'x')));
});

test('an idle connection is closed after the idle timeout', async (t) => {
  const w = await world(t, { idleMs: 150 });
  const s = await w.connector.connect(req(w.client, w.web, w.webPort));
  await exchange(s, 'x');
  t.is(w.inbound.connections, 1);
  await until('the idle connection to close', () => w.inbound.connections === 0 && w.connector.pool.stats().connections === 0);
  const again = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(await exchange(again, 'y'), 'echo:y', 'a new connection is dialled afterwards');
});

test('after a certificate rotation new streams use a new connection with the new certificate; the old one drains', async (t) => {
  const w = await world(t);
  const old = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(w.inbound.connections, 1);
  w.clientIdentity.set(await pki.ca.issue(id('shop', 'client')));
  const fresh = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(w.inbound.connections, 2, 'the rotated certificate dialled a new connection');
  t.is(await exchange(old, 'still here'), 'echo:still here', 'the old connection carried its stream to the end');
  await until('the drained connection to close', () => w.inbound.connections === 1);
  const third = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(w.inbound.connections, 1, 'new streams share the new connection');
  await Promise.all([exchange(fresh, 'a'), exchange(third, 'b')]);
});

test('a GOAWAY takes the connection out of the pool; the next stream dials anew', async (t) => {
  const w = await world(t);
  const s = await w.connector.connect(req(w.client, w.web, w.webPort));
  await exchange(s, 'x');
  await w.inbound.close(true); // GOAWAY to every session, stop listening
  await until('the pool to drop the connection', () => w.connector.pool.stats().connections === 0);
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, w.webPort))), 'UF', 'nothing listens any more');
});

test('a server presenting another identity than the destination’s is refused with IDENTITY_ERROR', async (t) => {
  const w = await world(t);
  // the client's view says web runs as shop/api; the server (correctly, by its view) presents shop/web
  const expected = { ...w.web, spiffeId: id('shop', 'api') };
  t.is(await flagOf(w.connector.connect(req(w.client, expected, w.webPort))), 'IDENTITY_ERROR');
  t.is(w.inbound.connections, 0);
});

test('a server certificate from another CA is refused with TLS_FAILURE', async (t) => {
  const w = await world(t);
  w.serverIdentity.set(pki.certs.webFromOtherCa);
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, w.webPort))), 'TLS_FAILURE');
});

test('a client certificate from another CA is refused by the server: TLS_FAILURE', async (t) => {
  const w = await world(t);
  w.clientIdentity.set(pki.certs.clientFromOtherCa);
  w.clientIdentity.setTrustBundle([pki.ca.certPem, pki.otherCa.certPem]);
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, w.webPort))), 'TLS_FAILURE');
});

test('nothing listening on the node is UF; a peer that is not HTTP/2 is H2_HANDSHAKE_FAILURE', async (t) => {
  const w = await world(t);
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, NODE_B_IP, r));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const refused = new HboneConnector({ identity: w.clientIdentity, nodeIp: () => NODE_B_IP, port, connectTimeoutMs: 2000 });
  t.teardown(() => refused.close());
  t.is(await flagOf(refused.connect(req(w.client, w.web, w.webPort))), 'UF');

  // valid TLS with the right identity and ALPN h2, then HTTP/1.1 instead of a SETTINGS frame
  const accepted = new Set<tls.TLSSocket>();
  const notH2 = tls.createServer(
    { cert: pki.certs.web.certChainPem, key: pki.certs.web.keyPem, ALPNProtocols: ['h2'], ca: [pki.ca.certPem], requestCert: true },
    (s) => {
      accepted.add(s);
      s.on('error', () => {});
      s.write('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
    },
  );
  await new Promise<void>((r) => notH2.listen(0, NODE_B_IP, r));
  t.teardown(() => {
    for (const s of accepted) s.destroy();
    return new Promise<void>((r) => notH2.close(() => r()));
  });
  const c = new HboneConnector({
    identity: w.clientIdentity,
    nodeIp: () => NODE_B_IP,
    port: (notH2.address() as net.AddressInfo).port,
    connectTimeoutMs: 2000,
  });
  t.teardown(() => c.close());
  t.is(await flagOf(c.connect(req(w.client, w.web, w.webPort))), 'H2_HANDSHAKE_FAILURE');
});

test('the CONNECT carries :authority, forwarded and traceparent as ztunnel sends them; an unanswered CONNECT fails', async (t) => {
  const w = await world(t);
  const seen: http2.IncomingHttpHeaders[] = [];
  // a peer proxy that records the request headers: 200 for port 1, never answers port 2
  const peer = http2.createSecureServer({
    cert: pki.certs.web.certChainPem,
    key: pki.certs.web.keyPem,
    ca: [pki.ca.certPem],
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2'],
  });
  peer.on('stream', (stream, headers) => {
    seen.push(headers);
    stream.on('error', () => {});
    if (headers[':authority']?.endsWith(':1')) stream.respond({ ':status': 200 });
  });
  await new Promise<void>((r) => peer.listen(0, NODE_B_IP, r));
  const c = new HboneConnector({
    identity: w.clientIdentity,
    nodeIp: () => NODE_B_IP,
    port: (peer.address() as net.AddressInfo).port,
    connectTimeoutMs: 400,
  });
  t.teardown(() => {
    c.close();
    return new Promise<void>((r) => peer.close(() => r()));
  });
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const s = await c.connect(req(w.client, w.web, 1, { sourceAddress: '10.244.0.7', sourcePort: 41234, traceparent }));
  s.destroy();
  t.is(seen[0]![':method'], 'CONNECT');
  t.is(seen[0]![':authority'], `${w.web.ip}:1`);
  t.is(seen[0]![':path'], undefined, 'CONNECT has no :path');
  t.is(seen[0]!.forwarded, 'for="10.244.0.7:41234"');
  t.is(seen[0]!.traceparent, traceparent);
  const started = Date.now();
  t.is(await flagOf(c.connect(req(w.client, w.web, 2))), 'CONNECT');
  t.true(Date.now() - started >= 350, 'it waited for the connect timeout');
});

test('a rotated workload certificate is what the server presents on the next handshake', async (t) => {
  const w = await world(t);
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

/** A raw HTTP/2 client with a valid client certificate, for what our connector never sends. */
async function rawSession(t: ExecutionContext, w: World, podIp: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`https://${NODE_B_IP}:${w.inbound.address.port}`, {
    servername: sniForPodIp(podIp),
    ca: [pki.ca.certPem],
    cert: pki.certs.client.certChainPem,
    key: pki.certs.client.keyPem,
    checkServerIdentity: () => undefined,
  });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('error', reject);
  });
  return session;
}

function status(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = session.request(headers, { endStream: headers[':method'] !== 'CONNECT' });
    s.on('response', (h) => {
      resolve(Number(h[':status']));
      s.close();
    });
    s.on('error', reject);
  });
}

test('the inbound side answers only CONNECT: GET and POST get 400', async (t) => {
  const w = await world(t);
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
  const w = await world(t);
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
  const w = await world(t);
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
  const w = await world(t);
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, w.web.ip, r));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, port))), 'CONNECT');
  const session = await rawSession(t, w, w.web.ip);
  t.is(await status(session, { ':method': 'CONNECT', ':authority': `${w.web.ip}:${port}` }), 503);
});

test('an AuthorizationPolicy denying the peer’s principal: the CONNECT gets 401, the client DENY; another principal passes', async (t) => {
  const policy = compileYaml(
    [
      podYaml('web', { ns: 'shop', labels: { app: 'web' }, sa: 'web', node: 'node-b' }),
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-client, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - from:
    - source: {principals: [cluster.local/ns/shop/sa/client]}
`,
    ].join('---\n'),
  );
  const w = await world(t, { security: SecurityIndex.of(policy.security) });
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
  const w = await world(t);
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
  const end = Date.now() + 3000;
  while ((await metricValue('istio_tcp_connections_closed_total', labels)) - before < 1 && Date.now() < end) await sleep(20);
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

test.serial('same node: the mesh connector delivers through the inbound side without TLS, with the source principal known', async (t) => {
  const w = await world(t);
  const local = workload('local-client', 'node-b', '10.99.0.7', 'client');
  w.snapshot.workloads.push(local);
  const mesh = new MeshConnector({ node: 'node-b', hbone: w.connector, tcp: plainTcp, local: w.deliver });
  const r = req(local, w.web, w.webPort);
  t.is(mesh.path(r), 'local');
  t.deepEqual(mesh.security(r), { policy: 'mutual_tls', sourcePrincipal: id('shop', 'client'), destinationPrincipal: id('shop', 'web') });
  const labels = {
    reporter: 'destination',
    source_principal: id('shop', 'client'),
    destination_workload: 'web',
    connection_security_policy: 'mutual_tls',
  };
  const before = await metricValue('istio_tcp_connections_opened_total', labels);
  const s = await mesh.connect(r);
  t.is(await exchange(s, 'near'), 'echo:near');
  t.is(w.inbound.connections, 0, 'no HBONE connection was made');
  t.is(w.clientIdentity.requested.length + w.serverIdentity.requested.length, 0, 'no certificate was needed');
  t.is((await metricValue('istio_tcp_connections_opened_total', labels)) - before, 1);

  // other node → HBONE; not meshed → plain TCP, principals unproven
  t.is(mesh.path(req(local, w.far, 8080)), 'hbone');
  const toPlain = req(local, w.plain, 8080);
  t.is(mesh.path(toPlain), 'tcp');
  t.is(mesh.security(toPlain), undefined);
});

test('same node: a refused pod connection rejects the connect with the delivery’s flag', async (t) => {
  const w = await world(t);
  const local = workload('local-client2', 'node-b', '10.99.0.8', 'client');
  const mesh = new MeshConnector({ node: 'node-b', hbone: w.connector, tcp: plainTcp, local: w.deliver });
  t.is(await flagOf(mesh.connect(req(local, w.web, 1))), 'UF');
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

async function sClient(t: ExecutionContext, w: World, cert?: WorkloadCertificate): Promise<SClient> {
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
  args.push('-CAfile', path.join(dir, 'ca.pem'), '-verify_return_error', '-quiet', '-msg');
  if (cert) {
    await writeFile(path.join(dir, 'cert.pem'), cert.certChainPem);
    await writeFile(path.join(dir, 'key.pem'), cert.keyPem);
    args.push('-cert', path.join(dir, 'cert.pem'), '-key', path.join(dir, 'key.pem'));
  }
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
  const w = await world(t);
  const r = await sClient(t, w, pki.certs.client);
  t.true(r.serverRecordsAfterHandshake.includes('17'), `the server sent application data (its SETTINGS): ${r.serverRecordsAfterHandshake}`);
  t.notRegex(r.out, /alert (certificate|unknown|bad|handshake)/);
});

test('openssl s_client without a client certificate is refused: alert certificate_required', async (t) => {
  const w = await world(t);
  const r = await sClient(t, w);
  t.regex(r.out, /Alert \[length 0002\], fatal certificate_required/);
  t.false(r.serverRecordsAfterHandshake.includes('17'), 'no application data from the server');
});

for (const [what, cert] of [
  ['a certificate from another CA', () => pki.certs.clientFromOtherCa],
  ['an expired certificate', () => pki.certs.clientExpired],
] as const) {
  test(`openssl s_client with ${what} is refused: the server hangs up right after its handshake, sending nothing`, async (t) => {
    const w = await world(t);
    const r = await sClient(t, w, cert());
    t.deepEqual(r.serverRecordsAfterHandshake, [], 'not a record from the server after its Finished');
    t.regex(r.out, /unexpected eof/);
    t.is(w.inbound.connections, 0);
  });
}

test('the snapshot carries each node with its proxy address: the InternalIP, else a pod’s hostIP', (t) => {
  const yaml = `
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: Hostname, address: node-a}, {type: InternalIP, address: 172.31.250.10}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-c}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec: {nodeName: node-b, containers: [{name: main}]}
status: {podIP: 10.244.1.2, hostIP: 172.31.250.11}
---
apiVersion: v1
kind: Pod
metadata: {name: q, namespace: shop}
spec: {nodeName: node-a, containers: [{name: main}]}
status: {podIP: 10.244.0.2, hostIP: 172.31.250.99}
`;
  const parsed = parseYamlFile('/config/nodes.yaml', yaml);
  if ('error' in parsed) throw parsed.error;
  const store = new ResourceStore().apply({
    files: [{ file: '/config/nodes.yaml', documents: parsed.documents, documentErrors: parsed.documentErrors }],
  });
  t.deepEqual(
    store.statuses.filter((s) => s.state === 'Rejected'),
    [],
  );
  t.deepEqual(compileSnapshot(store.resources).nodes, [
    { name: 'node-a', ip: '172.31.250.10' },
    { name: 'node-b', ip: '172.31.250.11' },
    { name: 'node-c', ip: '' },
  ]);
});
