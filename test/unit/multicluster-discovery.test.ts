// Remote clusters in the snapshot (issue 13): a control plane given `--remote-cluster
// NAME=DIR[,network=NET]` reads that cluster's YAML through the same source and validation,
// and merges it into its own snapshot as Istio multi-primary does: one Service per hostname
// with the endpoints of every cluster (namespace sameness), remote workloads carrying their
// cluster and network, Services kept cluster-local not exported, a remote pod whose address
// another cluster holds refused (in the status, counted), and each network's east-west gateway
// discovered with its identity. The node proxy then routes a destination of another network
// through that gateway, and fails UF, saying why, when the snapshot knows none.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { compileSnapshot } from '../../control/compile/compiler.js';
import type { ClusterProblem } from '../../control/compile/multicluster.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { gatewayRoute } from '../../agent/hbone/gateway-route.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import { UpstreamError } from '../../agent/transport/connector.js';
import { ResponseFlag } from '../../agent/transport/response-flags.js';
import { startControlPlane } from '../../control/control-plane.js';
import { parseRemoteCluster } from '../../control/remote-clusters.js';
import { formatConfigStatus } from '../../cli/config-status.js';
import { podYaml, resourcesOf } from '../helpers/config-yaml.js';
import { configDir, controlPlane, firstSnapshot } from '../helpers/control-plane.js';

const TD = 'cluster.local';

function serviceYaml(name: string, o: { ns?: string; annotations?: Record<string, string>; clusterIP?: string; labels?: Record<string, string> } = {}): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${o.ns ?? 'demo'}
  labels: ${JSON.stringify(o.labels ?? {})}
  annotations: ${JSON.stringify(o.annotations ?? {})}
spec:
  ${o.clusterIP ? `clusterIP: ${o.clusterIP}` : ''}
  selector: {app: ${name}}
  ports: [{name: http, port: 80, targetPort: 8080}]
`;
}

const nodeYaml = (name: string, ip: string) => `apiVersion: v1
kind: Node
metadata: {name: ${name}}
status: {addresses: [{type: InternalIP, address: ${ip}}]}
`;

/** The east-west gateway Service of network `net`, and its pod (ServiceAccount `eastwest`). */
const gatewayYaml = (net: string, ip: string, podIp: string, where: 'loadBalancer' | 'externalIPs' = 'loadBalancer') => [
  `apiVersion: v1
kind: Service
metadata:
  name: nodemesh-eastwest
  namespace: nodemesh-system
  labels: {topology.istio.io/network: ${net}}
spec:
  type: LoadBalancer
  selector: {app: eastwest}
  ports: [{name: tls-hbone, port: 15008}]
  ${where === 'externalIPs' ? `externalIPs: [${ip}]` : ''}
${where === 'loadBalancer' ? `status: {loadBalancer: {ingress: [{ip: ${ip}}]}}` : ''}
`,
  podYaml('eastwest-1', { ns: 'nodemesh-system', labels: { app: 'eastwest' }, sa: 'eastwest', ip: podIp, node: 'node-1' }),
];

const LOCAL = [nodeYaml('node-a', '172.18.0.2'), serviceYaml('backend'), podYaml('backend-a', { ns: 'demo', labels: { app: 'backend' }, ip: '10.244.1.5', node: 'node-a' }), podYaml('client', { ns: 'demo', ip: '10.244.1.6', node: 'node-a' })];
const REMOTE = [
  nodeYaml('node-1', '172.19.0.2'),
  serviceYaml('backend'),
  podYaml('backend-b', { ns: 'demo', labels: { app: 'backend' }, ip: '10.245.1.5', node: 'node-1' }),
  ...gatewayYaml('net-b', '192.0.2.10', '10.245.1.9'),
];

function compile(local: string[], remote: string[], problems: ClusterProblem[] = []): Snapshot {
  return compileSnapshot(resourcesOf(local, '/local/a.yaml'), {
    trustDomain: TD,
    cluster: 'cluster-a',
    network: 'net-a',
    remotes: [{ name: 'cluster-b', network: 'net-b', resources: resourcesOf(remote, '/remote/b.yaml') }],
    problems,
  });
}

const endpointsOf = (s: Snapshot, name: string) => s.services.find((x) => x.name === name)?.ports[0]?.endpoints.map((e) => [e.ip, e.workload, e.node]);

test('one hostname is one Service across clusters: the remote endpoints join the local ones in the same port, with their cluster and network', (t) => {
  const s = compile(LOCAL, REMOTE);
  t.is(s.services.filter((x) => x.hostname === 'backend.demo.svc.cluster.local').length, 1);
  t.deepEqual(endpointsOf(s, 'backend'), [
    ['10.244.1.5', 'demo/backend-a', 'node-a'],
    ['10.245.1.5', 'cluster-b/demo/backend-b', 'cluster-b/node-1'],
  ]);
  const remote = s.workloads.find((w) => w.name === 'backend-b')!;
  t.like(remote, { uid: 'cluster-b/demo/backend-b', cluster: 'cluster-b', network: 'net-b', node: 'cluster-b/node-1', spiffeId: 'spiffe://cluster.local/ns/demo/sa/default' });
  t.like(s.workloads.find((w) => w.name === 'backend-a'), { cluster: 'cluster-a', network: 'net-a' });
  t.deepEqual(
    s.nodes.map((n) => [n.name, n.ip, n.network]),
    [
      ['node-a', '172.18.0.2', 'net-a'],
      ['cluster-b/node-1', '172.19.0.2', 'net-b'],
    ],
  );
  // policies stay per cluster: security is compiled for this cluster's workloads only
  t.false(s.security.workloads.some((w) => w.workload.startsWith('cluster-b/')));
});

test('a Service only in the remote cluster appears with its endpoints, keeping its clusterIP unless a local Service holds it', (t) => {
  const s = compile(LOCAL, [...REMOTE, serviceYaml('reviews', { clusterIP: '10.96.5.5' }), podYaml('reviews-1', { ns: 'demo', labels: { app: 'reviews' }, ip: '10.245.1.7', node: 'node-1' })]);
  t.like(s.services.find((x) => x.name === 'reviews'), { hostname: 'reviews.demo.svc.cluster.local', clusterIp: '10.96.5.5' });
  t.deepEqual(endpointsOf(s, 'reviews'), [['10.245.1.7', 'cluster-b/demo/reviews-1', 'cluster-b/node-1']]);
  const taken = compile([...LOCAL, serviceYaml('ratings', { clusterIP: '10.96.5.5' })], [...REMOTE, serviceYaml('reviews', { clusterIP: '10.96.5.5' })]);
  const reviews = taken.services.find((x) => x.name === 'reviews')!;
  t.not(reviews.clusterIp, '10.96.5.5');
  t.regex(reviews.clusterIp, /^10\.96\./);
});

test('a Service kept cluster-local (nodemesh.io/cluster-local, or exportTo "~") is not exported; exportTo "." is namespace visibility and is', (t) => {
  const local = compile(LOCAL, [...REMOTE.filter((d) => !d.includes('kind: Service\nmetadata:\n  name: backend')), serviceYaml('backend', { annotations: { 'nodemesh.io/cluster-local': 'true' } })]);
  t.deepEqual(endpointsOf(local, 'backend'), [['10.244.1.5', 'demo/backend-a', 'node-a']]);
  const none = compile(LOCAL, [...REMOTE.slice(0, 1), serviceYaml('backend', { annotations: { 'networking.istio.io/exportTo': '~' } }), ...REMOTE.slice(2)]);
  t.deepEqual(endpointsOf(none, 'backend'), [['10.244.1.5', 'demo/backend-a', 'node-a']]);
  const dot = compile(LOCAL, [...REMOTE.slice(0, 1), serviceYaml('backend', { annotations: { 'networking.istio.io/exportTo': '.' } }), ...REMOTE.slice(2)]);
  t.is(endpointsOf(dot, 'backend')!.length, 2);
  // a local Service marked cluster-local keeps this cluster's clients on this cluster's endpoints
  const mine = compile([LOCAL[0]!, serviceYaml('backend', { annotations: { 'nodemesh.io/cluster-local': 'true' } }), ...LOCAL.slice(2)], REMOTE);
  t.deepEqual(endpointsOf(mine, 'backend'), [['10.244.1.5', 'demo/backend-a', 'node-a']]);
  // the remote pod itself is still known (a workload of the mesh), only not an endpoint here
  t.truthy(mine.workloads.find((w) => w.uid === 'cluster-b/demo/backend-b'));
});

test('a remote pod whose IP a local pod holds is refused with its endpoints, saying where and why; the rest of its cluster is taken', (t) => {
  const problems: ClusterProblem[] = [];
  const s = compile(LOCAL, [...REMOTE, podYaml('backend-c', { ns: 'demo', labels: { app: 'backend' }, ip: '10.244.1.6', node: 'node-1' })], problems);
  t.falsy(s.workloads.find((w) => w.name === 'backend-c'));
  t.deepEqual(endpointsOf(s, 'backend')!.map((e) => e[0]), ['10.244.1.5', '10.245.1.5']);
  t.is(problems.length, 1);
  t.like(problems[0], { level: 'error', cluster: 'cluster-b', resource: 'Pod demo/backend-c', file: '/remote/b.yaml', code: 'NM_ERR_CONFIG_CONFLICT' });
  t.regex(problems[0]!.message, /pod IP 10\.244\.1\.6 is already held by a pod of this cluster: clusters joined by gateways need separate pod CIDRs/);
});

test('each network\'s east-west gateway is discovered: its LoadBalancer (or external) address, port 15008, and its pods\' ServiceAccount as identity', (t) => {
  const s = compile(LOCAL, REMOTE);
  t.deepEqual(s.gateways, [{ network: 'net-b', address: '192.0.2.10', port: 15008, spiffeId: 'spiffe://cluster.local/ns/nodemesh-system/sa/eastwest', cluster: 'cluster-b' }]);
  const external = compile(LOCAL, [...REMOTE.slice(0, 3), ...gatewayYaml('net-b', '192.0.2.11', '10.245.1.9', 'externalIPs')]);
  t.is(external.gateways![0]!.address, '192.0.2.11');
  // no address yet: not a gateway, and the status says why
  const problems: ClusterProblem[] = [];
  const pending = compile(LOCAL, [...REMOTE.slice(0, 3), gatewayYaml('net-b', '192.0.2.10', '10.245.1.9')[0]!.replace(/status:.*\n/, ''), gatewayYaml('net-b', '', '10.245.1.9')[1]!], problems);
  t.deepEqual(pending.gateways, []);
  t.regex(problems.map((p) => p.message).join('\n'), /east-west gateway of network net-b \(cluster cluster-b\) has no address yet/);
  t.true(problems.every((p) => p.level === 'warning'), 'a LoadBalancer still pending is not an error');
});

test('without networks or remote clusters nothing new is written: no network fields, no gateways', (t) => {
  const s = compileSnapshot(resourcesOf(LOCAL), { trustDomain: TD });
  t.false(s.workloads.some((w) => 'network' in w));
  t.false(s.nodes.some((n) => 'network' in n));
  t.deepEqual(s.gateways, []);
});

test('nodemesh control --remote-cluster sends the merged snapshot over gRPC; a remote pod on a taken address is in the status and counted', async (t) => {
  const local = await configDir(t, { 'a.yaml': LOCAL.join('---\n') });
  const remote = await configDir(t, { 'b.yaml': REMOTE.join('---\n') });
  const cp = await controlPlane(t, { configDir: local, cluster: 'cluster-a', network: 'net-a', remoteClusters: [parseRemoteCluster(`cluster-b=${remote},network=net-b`)], rescanMs: 0 });
  const snap = await firstSnapshot(`127.0.0.1:${cp.grpcPort}`);
  t.deepEqual(snap.services.find((s) => s.name === 'backend')!.ports[0]!.endpoints.map((e) => [e.ip, e.workload]), [
    ['10.244.1.5', 'demo/backend-a'],
    ['10.245.1.5', 'cluster-b/demo/backend-b'],
  ]);
  t.like(snap.workloads.find((w) => w.name === 'backend-b'), { cluster: 'cluster-b', network: 'net-b' });
  t.is(snap.gateways![0]!.spiffeId, 'spiffe://cluster.local/ns/nodemesh-system/sa/eastwest');
  t.is(snap.nodes.find((n) => n.name === 'node-a')!.network, 'net-a');

  // the remote cluster's files change: a pod on a local pod's address
  await writeFile(path.join(remote, 'c.yaml'), podYaml('backend-c', { ns: 'demo', labels: { app: 'backend' }, ip: '10.244.1.6', node: 'node-1' }));
  await cp.rescan();
  const st = cp.status();
  const err = st.fileErrors.find((e) => e.resource === 'Pod demo/backend-c');
  t.like(err, { file: path.join(remote, 'c.yaml'), code: 'NM_ERR_CONFIG_CONFLICT' });
  t.like(st.remoteClusters![0], { name: 'cluster-b', network: 'net-b', refused: 1, workloads: 2 });
  t.regex(formatConfigStatus(st), /cluster-b \(network net-b\) from .*: 2 workload\(s\), 2 Service\(s\) merged, 0 not exported, 1 refused/);
  const counted = (await cp.metrics.configErrors.get()).values.find((v) => v.labels.code === 'NM_ERR_CONFIG_CONFLICT' && v.labels.kind === 'Pod');
  t.is(counted?.value, 1);
  // the refused pod is not in the snapshot the agents get
  t.falsy(cp.snapshot()!.workloads.find((w) => w.name === 'backend-c'));
});

test('a remote cluster that is not one is refused at start: the local name, a duplicate, a bad spec', async (t) => {
  const dir = await configDir(t, {});
  const start = (remoteClusters: { name: string; source: { dir: string } }[]) =>
    startControlPlane({ configDir: dir, cluster: 'cluster-a', remoteClusters, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', processMetrics: false });
  t.regex((await t.throwsAsync(start([{ name: 'cluster-a', source: { dir } }])))!.message, /is the local cluster's name/);
  t.regex((await t.throwsAsync(start([{ name: 'b', source: { dir } }, { name: 'b', source: { dir } }])))!.message, /given twice/);
  t.throws(() => parseRemoteCluster('cluster-b'), { message: /expected NAME=DIR\[,network=NET\]/ });
  t.throws(() => parseRemoteCluster('cluster-b=/x,zone=z'), { message: /unknown option "zone=z"/ });
});

test('the node proxy reaches a destination of another network through that network\'s gateway, its own network directly, and fails UF when no gateway is known', (t) => {
  const state = new ProxyState(compile(LOCAL, REMOTE));
  const remote = state.workloadByUid('cluster-b/demo/backend-b')!;
  const near = state.workloadByUid('demo/backend-a')!;
  t.is(gatewayRoute(state, 'node-a', near), undefined);
  t.deepEqual(gatewayRoute(state, 'node-a', remote), { address: '192.0.2.10', port: 15008, identity: 'spiffe://cluster.local/ns/nodemesh-system/sa/eastwest' });
  const blind = new ProxyState(compile(LOCAL, REMOTE.slice(0, 3)));
  const err = t.throws(() => gatewayRoute(blind, 'node-a', blind.workloadByUid('cluster-b/demo/backend-b')!), { instanceOf: UpstreamError });
  t.is((err as UpstreamError).flag, ResponseFlag.UpstreamConnectionFailure);
  t.regex(err!.message, /cluster-b\/demo\/backend-b is in network "net-b" \(cluster cluster-b\), not this node's \("net-a"\), and the snapshot knows no east-west gateway into it/);
});
