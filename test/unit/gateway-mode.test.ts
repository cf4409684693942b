// The east-west gateway's deployment mode (issue 13): what it takes from a snapshot (its
// network, the node proxies it may tunnel to, its identity: agent/hbone/gateway-scope.ts),
// and `agent --gateway` with a projected ServiceAccount token end to end in-process: a real
// control plane over the stand-in API server (TokenReview, the bound pod), the gateway on
// 127.0.0.x with real TLS 1.3 and HTTP/2, a stand-in node proxy on a node's 15008.
import test, { type ExecutionContext } from 'ava';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { startEastWestGateway } from '../../agent/east-west-gateway.js';
import { gatewayScope, tokenServiceAccount } from '../../agent/hbone/gateway-scope.js';
import { createCertificateClient } from '../../control/api/ca-client.js';
import { ControlPlaneCredentials } from '../../control/api/control-credentials.js';
import type { Snapshot, Workload } from '../../control/api/snapshot.js';
import { CA_FILES } from '../../control/ca/store.js';
import { startControlPlane } from '../../control/control-plane.js';
import { csrWithKey } from '../helpers/csr.js';
import { eventually } from '../helpers/eventually.js';
import { KubeApiServerStandIn } from '../helpers/kube-apiserver.js';
import { surveyMesh } from '../../cli/mesh-survey.js';
import { formatStatus } from '../../cli/status.js';
import { meshChecks } from '../../cli/check.js';

const TD = 'cluster.local';
const GW = `spiffe://${TD}/ns/nodemesh-system/sa/nodemesh-eastwestgateway`;
const OTHER_GW = `spiffe://${TD}/ns/nodemesh-system/sa/other-gateway`;

function w(uid: string, node: string, ip: string, sa: string): Workload {
  const [namespace, name] = uid.split('/') as [string, string];
  return { uid, name, namespace, node, ip, serviceAccount: sa, labels: {}, meshed: false, spiffeId: `spiffe://${TD}/ns/${namespace}/sa/${sa}`, failOpen: false, workloadName: name };
}

function snap(over: Partial<Snapshot> = {}): Snapshot {
  return {
    version: 7,
    generatedAt: '',
    workloads: [w('nodemesh-system/gw-0', 'node-a', '10.244.1.5', 'nodemesh-eastwestgateway'), w('shop/web-1', 'node-a', '10.244.1.6', 'web')],
    services: [],
    routing: { routes: [], destinations: [] },
    security: { workloads: [], policies: [] },
    trustBundle: [],
    nodes: [
      { name: 'node-a', ip: '172.18.0.2', network: 'net-a' },
      { name: 'node-b', ip: '172.18.0.3', network: 'net-a' },
      { name: 'node-c', ip: '', network: 'net-a' },
      { name: 'cluster-b/node-1', ip: '172.19.0.2', network: 'net-b' },
    ],
    namespaces: [],
    telemetry: [],
    gateways: [
      { network: 'net-a', address: '203.0.113.1', port: 15008, spiffeId: GW, cluster: 'cluster-a' },
      { network: 'net-b', address: '203.0.113.2', port: 15008, spiffeId: `spiffe://${TD}/ns/nodemesh-system/sa/nodemesh-eastwestgateway`, cluster: 'cluster-b' },
    ],
    ...over,
  } as Snapshot;
}

test('its scope: its node’s network, the 15008 of that network’s node proxies with an address only, and the gateway Service’s pod on its node as its identity', (t) => {
  const s = gatewayScope(snap(), { node: 'node-a', proxyIp: '10.244.1.5' });
  t.is(s.network, 'net-a');
  t.deepEqual([...s.targets].sort(), ['172.18.0.2:15008', '172.18.0.3:15008']);
  t.is(s.identity, GW);
  t.is(s.problem, undefined);
});

test('no gateway Service’s pod on its node (or no address yet): no identity, and the problem says what makes one', (t) => {
  const none = gatewayScope(snap({ gateways: [] }), { node: 'node-a', proxyIp: '10.244.1.5' });
  t.is(none.identity, undefined);
  t.regex(none.problem!, /the snapshot \(v7\) places no pod of an east-west gateway of network "net-a" on node node-a: a gateway is a Service labelled topology.istio.io\/network=net-a with port 15008, an address/);
  const elsewhere = gatewayScope(snap(), { node: 'node-b', proxyIp: '10.244.2.5' });
  t.is(elsewhere.identity, undefined, 'the gateway pod runs on node-a, not node-b: the CA would refuse node-b');
  const flat = gatewayScope(snap({ nodes: [{ name: 'node-a', ip: '172.18.0.2' }], gateways: [] }), { node: 'node-a', proxyIp: '10.244.1.5' });
  t.is(flat.network, '');
  t.regex(flat.problem!, /the control plane needs --network/);
});

test('pods of two gateways on its node: the one at --proxy-ip is its identity; at neither, no identity and the problem says to give its pod IP', (t) => {
  const two = snap({
    workloads: [...snap().workloads, w('nodemesh-system/other-0', 'node-a', '10.244.1.9', 'other-gateway')],
    gateways: [...snap().gateways!, { network: 'net-a', address: '203.0.113.3', port: 15008, spiffeId: OTHER_GW, cluster: 'cluster-a' }],
  });
  t.is(gatewayScope(two, { node: 'node-a', proxyIp: '10.244.1.9' }).identity, OTHER_GW);
  t.is(gatewayScope(two, { node: 'node-a', proxyIp: '10.244.1.5' }).identity, GW);
  const neither = gatewayScope(two, { node: 'node-a', proxyIp: '10.244.1.99' });
  t.is(neither.identity, undefined);
  t.regex(neither.problem!, /several east-west gateways .* none holds --proxy-ip 10\.244\.1\.99/);
});

test('with a token: the identity of the token’s ServiceAccount’s pod on its node, whatever the gateway Services say', (t) => {
  const s = gatewayScope(snap({ gateways: [] }), { node: 'node-a', proxyIp: '10.244.1.5', serviceAccount: { namespace: 'nodemesh-system', name: 'nodemesh-eastwestgateway' } });
  t.is(s.identity, GW);
  const wrong = gatewayScope(snap(), { node: 'node-b', proxyIp: '10.244.1.5', serviceAccount: { namespace: 'nodemesh-system', name: 'nodemesh-eastwestgateway' } });
  t.is(wrong.identity, undefined);
  t.regex(wrong.problem!, /no pod of ServiceAccount nodemesh-system\/nodemesh-eastwestgateway \(the token's\) on node node-b/);
});

const jwt = (claims: object) => `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

test('the token’s ServiceAccount is its sub; a token that is no ServiceAccount’s is refused saying why', (t) => {
  t.deepEqual(tokenServiceAccount(`${jwt({ sub: 'system:serviceaccount:nodemesh-system:nodemesh-eastwestgateway' })}\n`), { namespace: 'nodemesh-system', name: 'nodemesh-eastwestgateway' });
  t.throws(() => tokenServiceAccount(jwt({ sub: 'alice' })), { message: /not a ServiceAccount token .*its sub is "alice"/ });
  t.throws(() => tokenServiceAccount('opaque-token'), { message: /not a ServiceAccount token/ });
});

/** A control plane on the stand-in API server with token authentication, a gateway pod and its token. */
async function cluster(t: ExecutionContext) {
  const api = await KubeApiServerStandIn.start();
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-gateway-mode-'));
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  api.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.41' }] } });
  const pod = (ns: string, name: string, sa: string, ip: string) =>
    api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns }, spec: { nodeName: 'node-a', serviceAccountName: sa, containers: [{ name: 'c' }] }, status: { phase: 'Running', podIP: ip } });
  const gw = pod('nodemesh-system', 'gw-0', 'nodemesh-eastwestgateway', '127.0.0.40');
  const agent = pod('nodemesh-system', 'agent-a', 'nodemesh-agent', '127.0.0.41');
  pod('shop', 'web-1', 'web', '10.244.1.6');
  const token = jwt({ sub: 'system:serviceaccount:nodemesh-system:nodemesh-eastwestgateway' });
  const hour = Date.now() + 3600_000;
  api.addToken(token, { username: 'system:serviceaccount:nodemesh-system:nodemesh-eastwestgateway', audiences: ['nodemesh'], expiresAt: hour, pod: { name: 'gw-0', uid: gw.metadata.uid! } });
  api.addToken('agent-token', { username: 'system:serviceaccount:nodemesh-system:nodemesh-agent', audiences: ['nodemesh'], expiresAt: hour, pod: { name: 'agent-a', uid: agent.metadata.uid! } });
  const cp = await startControlPlane({
    grpcAddress: '127.0.0.1:0',
    adminAddress: '127.0.0.1:0',
    processMetrics: false,
    kubernetes: { kubeconfig: api.writeKubeconfig(dir), coalesceMs: 5 },
    ca: { dir: path.join(dir, 'ca'), rotationPollMs: 0, tokenAuth: {} },
  });
  t.teardown(() => cp.close());
  await eventually(() => cp.snapshot()?.workloads.some((x) => x.uid === 'nodemesh-system/gw-0'), 60_000, 'the first snapshot with the gateway pod');
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, token);
  await writeFile(path.join(dir, 'agent-token'), 'agent-token');
  return { cp, dir, tokenFile, control: `127.0.0.1:${cp.grpcPort}`, bundle: path.join(dir, 'ca', CA_FILES.trustBundle) };
}

test('`agent --gateway` with its projected token: ready with its own ServiceAccount’s identity, shown as its node’s gateway (not an agent) by `status` and `check`, tunnels to its network’s node proxy, and a stop drains the open tunnel', async (t) => {
  const c = await cluster(t);
  // node-a's "node proxy": an echo on its 15008
  const nodeProxy = net.createServer((s) => s.pipe(s));
  await new Promise<void>((resolve) => nodeProxy.listen(15008, '127.0.0.41', resolve));
  t.teardown(() => new Promise<void>((resolve) => nodeProxy.close(() => resolve())));
  const gateway = await startEastWestGateway({
    node: 'node-a',
    control: c.control,
    proxyIp: '127.0.0.40',
    admin: '127.0.0.40:0',
    hbonePort: 0,
    controlTls: { rootCert: c.bundle, tokenFile: c.tokenFile },
    stateDir: path.join(c.dir, 'gateway-state'),
    drainMs: 30_000,
  });
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await gateway.stop({ cut: Promise.resolve() });
  });
  const admin = (p: string) => fetch(`http://${gateway.adminAddresses[0]}${p}`);
  await eventually(async () => (await admin('/healthz/ready')).status === 200, 60_000, 'the gateway ready');
  const state = (await (await admin('/debug/state')).json()) as { identity: string; targets: string[] };
  t.is(state.identity, GW);
  t.deepEqual(state.targets, ['127.0.0.41:15008']);

  // `nodemesh status` and `check` tell it from node-a's agent: it watches as node-a too
  const survey = await surveyMesh({ control: `127.0.0.1:${c.cp.adminPort}`, agents: [gateway.adminAddresses[0]!] });
  t.like(survey.agents[0], { node: 'node-a', gateway: true, ready: true });
  t.is(survey.agents[0]!.meshedPods, undefined, 'a gateway enrols no pod: no PODS count');
  t.regex(formatStatus(survey, false, process.stdout), /^node-a \(gateway\)\s+127\.0\.0\.40:\d+\s+yes\s+v\d+\s+\d+\s+-\s/m);
  t.true(meshChecks(survey, 3600_000).some((x) => x.name === 'gateway on node-a ready' && x.ok));

  // a mesh SVID for web-1 (on node-a) from the same CA, with the agent's token
  const creds = new ControlPlaneCredentials({ rootCertFile: c.bundle, tokenFile: path.join(c.dir, 'agent-token') });
  const ca = createCertificateClient({ address: c.control, credentials: creds.credentials, timeoutMs: 30_000 });
  t.teardown(() => (ca.close(), creds.close()));
  const { csrPem, keyPem } = csrWithKey([`spiffe://${TD}/ns/shop/sa/web`]);
  const chain = await ca.createCertificate({ csrPem, identity: `spiffe://${TD}/ns/shop/sa/web`, validitySeconds: 600 });
  const bundle = c.cp.snapshot()!.trustBundle;

  const [host, port] = [gateway.address.split(':')[0]!, Number(gateway.address.split(':')[1])];
  const peer = await new Promise<X509Certificate>((resolve, reject) => {
    const s = tls.connect({ host, port, servername: 'hbone-gateway.nodemesh', ALPNProtocols: ['h2'], ca: bundle, cert: chain.join(''), key: keyPem, checkServerIdentity: () => undefined }, () => {
      resolve(s.getPeerX509Certificate()!);
      s.destroy();
    });
    s.once('error', reject);
  });
  t.is(peer.subjectAltName, `URI:${GW}`, 'it presents its own ServiceAccount’s identity');

  const session = http2.connect(`https://${host}:${port}`, { servername: 'hbone-gateway.nodemesh', ca: bundle, cert: chain.join(''), key: keyPem, checkServerIdentity: () => undefined });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const tunnel = session.request({ ':method': 'CONNECT', ':authority': '127.0.0.41:15008' });
  tunnel.on('error', () => {});
  t.is(Number((await new Promise<http2.IncomingHttpHeaders>((resolve) => tunnel.once('response', resolve)))[':status']), 200);
  tunnel.write('ping');
  t.is(String(await new Promise<Buffer>((resolve) => tunnel.once('data', resolve))), 'ping');

  // the stop waits for the open tunnel (not ready meanwhile), and ends when it closes
  const stopping = gateway.stop().then(() => (stopped = true));
  await eventually(async () => (await admin('/healthz/ready').catch(() => undefined))?.status === 503, 10_000, 'not ready while draining');
  t.false(stopped, 'the stop waits for the tunnel');
  tunnel.end();
  tunnel.close();
  await stopping;
  t.true(stopped);
  await t.throwsAsync(admin('/healthz/live'), undefined, 'the admin port is closed after the stop');
});

test('a restarted gateway serves from its last good state (snapshot and certificate) before the control plane answers', async (t) => {
  const c = await cluster(t);
  const opts = {
    node: 'node-a',
    proxyIp: '127.0.0.42',
    admin: '127.0.0.42:0',
    hbonePort: 0,
    controlTls: { rootCert: c.bundle, tokenFile: c.tokenFile },
    stateDir: path.join(c.dir, 'gateway-state'),
    drainMs: 0,
  };
  const first = await startEastWestGateway({ ...opts, control: c.control });
  const ready = (g: { adminAddresses: string[] }) => fetch(`http://${g.adminAddresses[0]}/healthz/ready`).then((r) => r.status === 200, () => false);
  await eventually(() => ready(first), 60_000, 'the first gateway ready');
  await first.stop();
  // the second one's control plane address answers nothing: only the last good state can make it ready
  const dead = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => dead.close(() => resolve())));
  const second = await startEastWestGateway({ ...opts, control: `127.0.0.1:${(dead.address() as net.AddressInfo).port}` });
  t.teardown(() => second.stop({ cut: Promise.resolve() }));
  await eventually(() => ready(second), 10_000, 'the restarted gateway ready from its last good state');
  const state = (await (await fetch(`http://${second.adminAddresses[0]}/debug/state`)).json()) as { identity: string; snapshotSource: string };
  t.is(state.identity, GW);
  t.is(state.snapshotSource, 'last good state');
});
