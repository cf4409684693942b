// A small HBONE world on loopback for the HBONE tests: a test CA and SVIDs, TCP "pods" on
// 127.0.0.x, a snapshot (node-a: clients; node-b at 127.0.0.10: web, db and a pod that is
// not meshed; node-c: far), node-b's real 15008 server and a client-side HboneConnector.
import type { ExecutionContext } from 'ava';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Service, Snapshot, Workload } from '../../control/api/snapshot.js';
import type { SecurityIndex } from '../../agent/policy/authorization.js';
import { HboneConnector } from '../../agent/hbone/client.js';
import { HboneInbound, type HboneInboundOptions } from '../../agent/hbone/server.js';
import { sniForPodIp } from '../../agent/hbone/protocol.js';
import type { WorkloadCertificate } from '../../agent/identity/identity.js';
import type { InboundDeliver } from '../../agent/proxy/inbound-capture.js';
import { deliverInbound } from '../../agent/proxy/inbound-delivery.js';
import type { AuthorizedConnections } from '../../agent/proxy/authorized-connections.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import { TcpConnector, UpstreamError, type UpstreamConnector, type UpstreamRequest } from '../../agent/transport/connector.js';
import { FixedIdentityProvider, TestCa } from './test-ca.js';

export const TD = 'cluster.local';
export const id = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;
export const NODE_B_IP = '127.0.0.10';

export interface Pki {
  ca: TestCa;
  otherCa: TestCa;
  certs: Record<
    'client' | 'client2' | 'web' | 'db' | 'far' | 'webFromOtherCa' | 'clientFromOtherCa' | 'clientExpired',
    WorkloadCertificate
  >;
}

export function workload(name: string, node: string, ip: string, sa: string, meshed = true): Workload {
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
    failOpen: false,
    workloadName: '',
  };
}

/** A TCP "pod": answers every chunk with `echo:<chunk>`, ends when its peer ends. */
export async function pod(t: ExecutionContext, ip: string): Promise<{ port: number; seen: string[] }> {
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

/** The agent's own plain TCP connector, unmarked (tests run without CAP_NET_ADMIN). */
export const plainTcp: UpstreamConnector = new TcpConnector(undefined, 5_000);

export interface World {
  pki: Pki;
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

export async function world(
  t: ExecutionContext,
  pki: Pki,
  opts: { maxStreams?: number; idleMs?: number; serverMaxStreams?: number; serverIdleMs?: number; security?: SecurityIndex | (() => SecurityIndex); serverKeepalive?: HboneInboundOptions['keepalive']; connections?: AuthorizedConnections } = {},
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
    namespaces: [],
    routing: {} as Snapshot['routing'],
    security: {} as Snapshot['security'],
    trustBundle: [pki.ca.certPem],
  };
  const serverIdentity = new FixedIdentityProvider([pki.ca.certPem], [pki.certs.web, pki.certs.db, pki.certs.far]);
  const clientIdentity = new FixedIdentityProvider([pki.ca.certPem], [pki.certs.client, pki.certs.client2]);
  // the inbound delivery as the agent binds it (here without a policy: allow, PERMISSIVE)
  const state = new ProxyState(snapshot);
  // `security` as a function: the policy in force when each stream arrives (a test that applies a new one)
  const deliver: InboundDeliver = (stream, c) => {
    const security = typeof opts.security === 'function' ? opts.security() : opts.security;
    return deliverInbound(stream, c, plainTcp, { ...(security ? { security } : {}), ...(opts.connections ? { connections: opts.connections } : {}) });
  };
  const inbound = new HboneInbound({
    host: NODE_B_IP,
    port: 0,
    node: 'node-b',
    identity: serverIdentity,
    state: () => state,
    deliver,
    ...(opts.serverMaxStreams ? { maxConcurrentStreams: opts.serverMaxStreams } : {}),
    ...(opts.serverIdleMs ? { idleTimeoutMs: opts.serverIdleMs } : {}),
    ...(opts.serverKeepalive ? { keepalive: opts.serverKeepalive } : {}),
  });
  await inbound.listen();
  const connector = new HboneConnector({
    identity: clientIdentity,
    nodeIp: (w) => state.nodeIp(w.node),
    port: inbound.address.port,
    // a TLS handshake on a loaded machine can take seconds; no test here waits it out
    connectTimeoutMs: 15_000,
    pool: { maxStreamsPerConnection: opts.maxStreams ?? 100, idleTimeoutMs: opts.idleMs ?? 60_000 },
  });
  t.teardown(async () => {
    connector.close();
    await inbound.close();
  });
  return {
    pki,
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

export function req(
  source: Workload | undefined,
  destination: Workload,
  port: number,
  extra: Partial<UpstreamRequest> = {},
): UpstreamRequest {
  return { source, sourceAddress: source?.ip ?? '10.99.0.99', sourcePort: 40000, ip: destination.ip, port, destination, ...extra };
}

/** Writes `msg`, half-closes, and collects everything until the far end ends. */
export function exchange(s: Duplex, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.once('end', () => resolve(out));
    s.once('error', reject);
    s.end(msg);
  });
}

export async function flagOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof UpstreamError) return err.flag;
    throw err;
  }
  throw new Error('expected the connect to fail');
}

/** A raw HTTP/2 client with a valid client certificate, for what our connector never sends. */
/** A client session as the source workload's, to `port` (default node-b's HBONE server), not yet up. */
export function connectClient(t: ExecutionContext, w: World, podIp: string, port = w.inbound.address.port): http2.ClientHttp2Session {
  const session = http2.connect(`https://${NODE_B_IP}:${port}`, {
    servername: sniForPodIp(podIp),
    ca: [w.pki.ca.certPem],
    cert: w.pki.certs.client.certChainPem,
    key: w.pki.certs.client.keyPem,
    checkServerIdentity: () => undefined,
  });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  return session;
}

export async function rawSession(t: ExecutionContext, w: World, podIp: string): Promise<http2.ClientHttp2Session> {
  const session = connectClient(t, w, podIp);
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('error', reject);
  });
  return session;
}

export function status(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = session.request(headers, { endStream: headers[':method'] !== 'CONNECT' });
    s.on('response', (h) => {
      resolve(Number(h[':status']));
      s.close();
    });
    s.on('error', reject);
  });
}

/** A test CA, another CA, and the SVIDs the HBONE tests use (one expired, two from the other CA). */
export async function createPki(): Promise<Pki> {
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
  return { ca, otherCa, certs: { client, client2, web, db, far, webFromOtherCa, clientFromOtherCa, clientExpired } };
}
