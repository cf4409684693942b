// The pure steps of a two-cluster lab (no root): which Service is a cluster's east-west
// gateway and what network it names, the second cluster's pod CIDRs, the gateway's address
// and command line, and the control plane's multi-cluster flags.
import test from 'ava';
import { ConfigError } from '../../common/errors.js';
import { AGENT_ENV } from '../../deploy/lab/lab-agents.js';
import { controlArgv } from '../../deploy/lab/lab-commands.js';
import { clusterNetwork, findGateways, planGateways } from '../../deploy/lab/lab-gateway.js';
import { parseLabModel } from '../../deploy/lab/lab-model.js';
import { planLab } from '../../deploy/lab/lab-plan.js';
import type { LabClusterState } from '../../deploy/lab/lab-state.js';

const CLUSTER = `
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
---
apiVersion: v1
kind: Service
metadata: {name: ewgw, namespace: istio-system, labels: {topology.istio.io/network: net-b}}
spec:
  type: LoadBalancer
  selector: {app: ewgw}
  ports: [{name: tls-hbone, port: 15008}]
---
apiVersion: v1
kind: Pod
metadata: {name: ewgw-0, namespace: istio-system, labels: {app: ewgw}}
spec:
  nodeName: n2
  serviceAccountName: ewgw
  containers: [{name: gw, command: [nodemesh, agent, --gateway]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: demo}
spec:
  nodeName: n1
  containers: [{name: web, command: [sleep, infinity]}]
`;

const cluster = (): LabClusterState => ({
  name: 'cluster-b',
  network: 'net-b',
  parent: 'mc',
  index: 1,
  remotes: [{ name: 'cluster-a', network: 'net-a', configDir: '/run/nodemesh/labs/mc-cluster-a/config' }],
  pluginCa: { cert: '/ca/b/ca-cert.pem', key: '/ca/b/ca-key.pem', chain: '/ca/b/cert-chain.pem' },
  wanIp: '172.31.241.254',
  remoteGateways: [],
  remoteSubnets: [],
  gateways: [],
});

test('a cluster’s gateway is the Service labelled with a network and port 15008, with the one pod it selects', (t) => {
  const model = parseLabModel('/lab/cluster-b', [{ name: 'c.yaml', text: CLUSTER }]);
  const gws = findGateways(model);
  t.deepEqual(gws.map((g) => [g.service.name, g.pod.name, g.network]), [['ewgw', 'ewgw-0', 'net-b']]);
  t.is(clusterNetwork('cluster-b', model, gws), 'net-b');

  const none = parseLabModel('/lab/cluster-b', [{ name: 'c.yaml', text: CLUSTER.replace('topology.istio.io/network: net-b', 'app: x') }]);
  t.deepEqual(findGateways(none), []);
  const err = t.throws(() => clusterNetwork('cluster-b', none, []), { instanceOf: ConfigError });
  t.regex(err!.message, /no east-west gateway: add a Service labelled topology\.istio\.io\/network: NETWORK with port 15008/);

  const two = parseLabModel('/lab/cluster-b', [{ name: 'c.yaml', text: `${CLUSTER}---\napiVersion: v1\nkind: Pod\nmetadata: {name: ewgw-1, namespace: istio-system, labels: {app: ewgw}}\nspec: {nodeName: n1, containers: [{name: gw, command: [x]}]}\n` }]);
  const e2 = t.throws(() => findGateways(two), { instanceOf: ConfigError });
  t.regex(e2!.message, /c\.yaml.*Service istio-system\/ewgw.*spec\.selector.*exactly one Pod.*not 2: ewgw-0, ewgw-1/s);
});

test('the second cluster takes 10.245.<node>.0/24; its gateway pod runs the gateway mode on its LoadBalancer address', (t) => {
  const model = parseLabModel('/lab/cluster-b', [{ name: 'c.yaml', text: CLUSTER }]);
  const state = planLab({ name: 'mc-cluster-b', slot: 1, cgroupRoot: '/sys/fs/cgroup/nodemesh-lab/mc-cluster-b', model, agents: true, control: true, cluster: cluster() });
  t.deepEqual(state.nodes.map((n) => n.podCidr), ['10.245.0.0/24', '10.245.1.0/24']);
  t.deepEqual(state.pods.map((p) => p.ip).sort(), ['10.245.0.2', '10.245.1.2']);
  planGateways(state, findGateways(model), '/repo/bin/nodemesh.js');
  const gw = state.cluster!.gateways[0]!;
  t.like(gw, { namespace: 'istio-system', service: 'ewgw', pod: 'ewgw-0', node: 'n2', address: '172.31.241.200', vethRoot: 'nm1g0', admin: '172.31.241.200:15020' });
  const argv = state.pods.find((p) => p.name === 'ewgw-0')!.containers[0]!.argv;
  t.deepEqual(argv.slice(1, 12), ['/repo/bin/nodemesh.js', 'agent', '--gateway', '--node', 'n2', '--control', '172.31.241.1:15012', '--proxy-ip', '172.31.241.200', '--admin', '172.31.241.200:15020']);
  t.true(argv.includes('/run/nodemesh/labs/mc-cluster-b/node-credentials/n2'), 'its node’s credential');
  // the allocator of the lab's agents (jemalloc where the host has it), one worker
  const env = state.pods.find((p) => p.name === 'ewgw-0')!.containers[0]!.env;
  t.like(env, { ...AGENT_ENV, NODEMESH_WORKERS: '1' });
});

test('a single-cluster plan carries no cluster field, and the control plane of a cluster gets the multi-cluster flags', (t) => {
  const model = parseLabModel('/lab', [{ name: 'c.yaml', text: CLUSTER }]);
  const single = planLab({ name: 'one', slot: 0, cgroupRoot: '/cg', model, agents: true, control: true });
  t.false('cluster' in single);
  t.is(single.nodes[1]!.podCidr, '10.244.1.0/24');
  const base = { configDir: '/c', grpc: 'h:1', admin: 'h:2', caDir: '/ca', nodeCa: '/nca' };
  const argv = controlArgv('/cli', { ...base, cluster: cluster() });
  t.deepEqual(argv.slice(controlArgv('/cli', base).length), [
    '--cluster', 'cluster-b',
    '--network', 'net-b',
    '--remote-cluster', 'cluster-a=/run/nodemesh/labs/mc-cluster-a/config,network=net-a',
    '--ca-cert', '/ca/b/ca-cert.pem',
    '--ca-key', '/ca/b/ca-key.pem',
    '--ca-chain', '/ca/b/cert-chain.pem',
  ]);
});
