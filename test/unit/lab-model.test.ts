// The lab's YAML is the control plane's YAML: read by the same reader, its Nodes, Namespaces,
// Pods and Services checked by the same validators, so the lab refuses what the control plane
// would reject, in the same words. Only what the lab adds (no scheduler, no images, names it
// builds network namespaces from) is its own. Pure: no root needed.
import test from 'ava';
import { ConfigError } from '../../common/errors.js';
import { parseLabModel } from '../../deploy/lab/lab-model.js';
import { parseYamlFile } from '../../control/source/files.js';
import { validateDocument } from '../../control/validate/validate.js';

const NODE = 'apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n---\n';
const pod = (spec: string, name = 'p') => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: shop\nspec:\n${spec}`;
const RUNNABLE = '  nodeName: n1\n  containers:\n  - name: c\n    command: [sleep, "9"]\n';

function labError(text: string): ConfigError {
  try {
    parseLabModel('/lab', [{ name: 'lab.yaml', text }]);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('accepted');
}

test('a Pod the control plane would reject is refused by the lab with the control plane\'s own error', (t) => {
  const text = NODE + pod(`${RUNNABLE}  serviceAccountName: Not_A_Name\n`);
  const parsed = parseYamlFile('lab.yaml', text);
  if ('error' in parsed) return t.fail(parsed.error.message);
  const control = validateDocument(parsed.documents[1]!);
  if (control.ok) return t.fail('the control plane accepted it');
  const lab = labError(text);
  t.is(lab.code, control.error.code);
  t.is(lab.message, control.error.message);
  t.regex(lab.message, /^lab\.yaml:\d+: Pod shop\/p: field spec\.serviceAccountName: "Not_A_Name" is not a valid name/);
});

test('the lab\'s own rules name the file, line, resource and field', (t) => {
  let e = labError(NODE + pod('  nodeName: n1\n  containers:\n  - name: c\n    image: nginx\n'));
  t.is(e.code, 'NM_ERR_CONFIG_FIELD');
  t.regex(e.message, /^lab\.yaml:14: Pod shop\/p: field spec\.containers\[0\]\.command: the lab ignores images/, 'a missing field is placed at its container');
  e = labError(NODE + pod(`${RUNNABLE}  hostNetwork: true\n`));
  t.regex(e.message, /^lab\.yaml:16: Pod shop\/p: field spec\.hostNetwork: the lab gives every Pod its own network namespace/);
  e = labError(NODE + pod('  containers:\n  - name: c\n    command: [x]\n'));
  t.regex(e.message, /Pod shop\/p: field spec\.nodeName: the lab has no scheduler/);
  e = labError(NODE + pod(RUNNABLE, `web.${'p'.repeat(60)}`));
  t.regex(e.message, /field metadata\.name: "web\.p{60}" is too long for the lab: at most 63 characters/, 'a valid Pod name, but too long to name a network namespace');
  e = labError(NODE + pod(`${RUNNABLE}    env:\n    - name: WHERE\n      valueFrom: {fieldRef: {fieldPath: metadata.uid}}\n`));
  t.regex(e.message, /field spec\.containers\[0\]\.env\[0\]\.valueFrom: the lab supports only valueFrom\.fieldRef\.fieldPath in: metadata\.name/);
});

test('a resource or clusterIP declared twice fails with the control plane\'s conflict message', (t) => {
  let e = labError(NODE + pod(RUNNABLE) + '\n---\n' + pod(RUNNABLE));
  t.is(e.code, 'NM_ERR_CONFIG_CONFLICT');
  t.regex(e.message, /Pod shop\/p: field metadata\.name: also defined at lab\.yaml:6, which wins/);
  const svc = (name: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec: {clusterIP: 10.96.3.3, ports: [{port: 80}]}\n`;
  e = labError(`${NODE}${svc('a')}---\n${svc('b')}`);
  t.is(e.code, 'NM_ERR_CONFIG_CONFLICT');
  t.regex(e.message, /Service default\/b: field spec\.clusterIP: clusterIP 10\.96\.3\.3 is already used by Service default\/a \(lab\.yaml:6\)/);
});

test('documents of other kinds are kept unread for the control plane, and the Pods it builds carry the validated spec', (t) => {
  const m = parseLabModel('/lab', [
    {
      name: 'lab.yaml',
      text: `${NODE}${pod(`${RUNNABLE}    ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]\n    env:\n    - {name: A, value: "1"}\n    - name: B\n      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}\n`)}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec: {}\n`,
    },
  ]);
  t.deepEqual(m.files[0]!.documents.map((d) => [d.source.kind, d.resource?.kind]), [['Node', 'Node'], ['Pod', 'Pod'], ['VirtualService', undefined]]);
  const p = m.pods[0]!;
  t.is(p.spec.serviceAccountName, 'default', 'defaulted as the control plane does');
  t.deepEqual(p.containers, [{ name: 'c', argv: ['sleep', '9'], env: [{ name: 'A', value: '1' }, { name: 'B', fieldRef: 'spec.nodeName' }], tcpPorts: [80] }]);
  t.deepEqual(m.namespaces.map((n) => [n.name, n.declared]), [['shop', false]]);
});

test('a node of more than 250 pods widens every node’s pod CIDR to the /23 or /22 that holds it; up to 250 the lab keeps its /24s', async (t) => {
  const { planLab, podBlocks, podPrefixLength } = await import('../../deploy/lab/lab-plan.js');
  const lab = (counts: number[]) => {
    const docs = counts.flatMap((n, i) => [
      `apiVersion: v1\nkind: Node\nmetadata: {name: n${i}}`,
      ...Array.from({ length: n }, (_, k) => `apiVersion: v1\nkind: Pod\nmetadata: {name: p${i}-${k}, namespace: default}\nspec: {nodeName: n${i}, containers: [{name: c, command: [sleep, infinity]}]}`),
    ]);
    return parseLabModel('/lab', [{ name: 'lab.yaml', text: docs.join('\n---\n') }]);
  };
  const plan = (counts: number[]) => planLab({ name: 'w', slot: 0, cgroupRoot: '/cg', model: lab(counts), agents: true, control: true });

  const small = plan([250, 1]);
  t.deepEqual(small.nodes.map((n) => [n.podCidr, n.podBridgeIp]), [['10.244.0.0/24', '10.244.0.1'], ['10.244.1.0/24', '10.244.1.1']]);
  t.is(small.pods.find((p) => p.name === 'p0-249')!.ip, '10.244.0.251');

  const wide = plan([0, 100, 500]);
  t.deepEqual(wide.nodes.map((n) => [n.podCidr, n.podBridgeIp, podPrefixLength(n)]), [
    ['10.244.0.0/23', '10.244.0.1', 23],
    ['10.244.2.0/23', '10.244.2.1', 23],
    ['10.244.4.0/23', '10.244.4.1', 23],
  ]);
  const ips = wide.pods.filter((p) => p.node === 'n2').map((p) => p.ip);
  t.is(ips[0], '10.244.4.2');
  t.is(ips[253], '10.244.4.255', 'a host address inside the /23');
  t.is(ips[254], '10.244.5.0');
  t.is(ips[499], '10.244.5.245');
  t.is(new Set(wide.pods.map((p) => p.ip)).size, 600, 'no address twice');

  t.is(podBlocks(lab([1000])), 4);
  t.throws(() => podBlocks(lab([1019])), { message: /Node n0 has 1019 Pods; a lab node holds at most 1018/ });
});
