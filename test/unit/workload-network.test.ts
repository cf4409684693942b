// Istio's per-pod and per-namespace network labels (issue 13): a pod's network is its own
// `topology.istio.io/network` label, else its namespace's, else its cluster's (`--network`; for
// a remote cluster the one given, else the label of that cluster's own system namespace, as
// Istio reads it). The node proxy then takes a pod of another network through that network's
// east-west gateway even when it sits in this cluster, and reaches a pod of its own network
// directly even when it sits in a remote cluster.
import test from 'ava';
import { compileSnapshot } from '../../control/compile/compiler.js';
import { gatewayRoute } from '../../agent/hbone/gateway-route.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import { podYaml, resourcesOf } from '../helpers/config-yaml.js';
import { configDir, controlPlane } from '../helpers/control-plane.js';
import { eventually } from '../helpers/eventually.js';

const ns = (name: string, network?: string) => `apiVersion: v1
kind: Namespace
metadata:
  name: ${name}
  labels: ${JSON.stringify(network ? { 'topology.istio.io/network': network } : {})}
`;
const node = (name: string, ip: string) => `apiVersion: v1
kind: Node
metadata: {name: ${name}}
status: {addresses: [{type: InternalIP, address: ${ip}}]}
`;
const gateway = (net: string, ip: string, podIp: string) => [
  `apiVersion: v1
kind: Service
metadata:
  name: eastwest-${net}
  namespace: nodemesh-system
  labels: {topology.istio.io/network: ${net}}
spec:
  type: LoadBalancer
  selector: {app: eastwest-${net}}
  ports: [{name: tls-hbone, port: 15008}]
status: {loadBalancer: {ingress: [{ip: ${ip}}]}}
`,
  podYaml(`eastwest-${net}-1`, { ns: 'nodemesh-system', labels: { app: `eastwest-${net}` }, sa: 'eastwest', ip: podIp, node: 'node-a' }),
];

const LOCAL = [
  node('node-a', '172.18.0.2'),
  ns('demo'),
  ns('edge', 'net-edge'),
  podYaml('plain', { ns: 'demo', ip: '10.244.1.5' }),
  podYaml('in-edge', { ns: 'edge', ip: '10.244.1.6' }),
  podYaml('own-label', { ns: 'edge', ip: '10.244.1.7', labels: { 'topology.istio.io/network': 'net-pod' } }),
  ...gateway('net-edge', '192.0.2.20', '10.244.1.20'),
];

test("a pod's network: its own label, else its namespace's, else the cluster's --network; without any, none is written", (t) => {
  const s = compileSnapshot(resourcesOf(LOCAL), { cluster: 'cluster-a', network: 'net-a' });
  const net = (name: string) => s.workloads.find((w) => w.name === name)?.network;
  t.is(net('plain'), 'net-a');
  t.is(net('in-edge'), 'net-edge');
  t.is(net('own-label'), 'net-pod');
  const flat = compileSnapshot(resourcesOf(LOCAL.filter((d) => !d.includes('net-'))), {});
  t.false(flat.workloads.some((w) => 'network' in w), 'a cluster without networks gets the snapshot it got before');
});

test('the node proxy takes a local pod of another network through its gateway, and a pod of its own network directly', (t) => {
  const state = new ProxyState(compileSnapshot(resourcesOf(LOCAL), { cluster: 'cluster-a', network: 'net-a' }));
  t.is(gatewayRoute(state, 'node-a', state.workloadByUid('demo/plain')!), undefined);
  t.deepEqual(gatewayRoute(state, 'node-a', state.workloadByUid('edge/in-edge')!), { address: '192.0.2.20', port: 15008, identity: 'spiffe://cluster.local/ns/nodemesh-system/sa/eastwest' });
});

test("a remote cluster without network=: its own nodemesh-system label is its network (Istio's system namespace), a pod's own label still wins", async (t) => {
  const local = await configDir(t, { 'a.yaml': [node('node-a', '172.18.0.2'), ns('demo'), podYaml('client', { ns: 'demo', ip: '10.244.1.5' })].join('---\n') });
  const remote = await configDir(t, {
    'b.yaml': [
      node('node-1', '172.19.0.2'),
      ns('nodemesh-system', 'net-b'),
      ns('demo'),
      podYaml('backend-b', { ns: 'demo', ip: '10.245.1.5', node: 'node-1' }),
      podYaml('special', { ns: 'demo', ip: '10.245.1.6', node: 'node-1', labels: { 'topology.istio.io/network': 'net-x' } }),
    ].join('---\n'),
  });
  const cp = await controlPlane(t, { configDir: local, cluster: 'cluster-a', network: 'net-a', remoteClusters: [{ name: 'cluster-b', source: { dir: remote } }], rescanMs: 0 });
  const s = await eventually(() => (cp.snapshot()?.workloads.length === 3 ? cp.snapshot() : undefined), 10_000, 'both clusters');
  const net = (name: string) => s.workloads.find((w) => w.name === name)?.network;
  t.is(net('client'), 'net-a');
  t.is(net('backend-b'), 'net-b');
  t.is(net('special'), 'net-x');
  t.is(s.nodes.find((n) => n.name === 'cluster-b/node-1')?.network, 'net-b');
  t.is(cp.status().remoteClusters![0]!.network, 'net-b');
});
