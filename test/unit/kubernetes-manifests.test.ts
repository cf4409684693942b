// The Kubernetes manifests carry the contracts the README documents: the ports, the
// readiness path, the opt-out of the mesh's own namespace, and least privilege (drop ALL,
// add back only what the agent needs).
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { packagePath } from '../../common/paths.js';

const DIR = packagePath('deploy', 'kubernetes') + '/';

interface Container {
  name: string;
  args?: string[];
  ports?: { containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: number } };
  securityContext?: { capabilities?: { drop?: string[]; add?: string[] }; readOnlyRootFilesystem?: boolean };
}
interface Doc {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { template?: { spec: { containers: Container[]; hostNetwork?: boolean; tolerations?: unknown[]; priorityClassName?: string } } };
}

async function docs(file: string): Promise<Doc[]> {
  const text = await readFile(DIR + file, 'utf8');
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Doc;
  });
}

test('the agent DaemonSet exposes 15001, 15006, 15008 and 15020 with readiness on /healthz/ready', async (t) => {
  const ds = (await docs('agent.yaml')).find((d) => d.kind === 'DaemonSet')!;
  const pod = ds.spec!.template!.spec;
  const agent = pod.containers[0]!;
  t.deepEqual(agent.ports!.map((p) => p.containerPort).sort(), [15001, 15006, 15008, 15020]);
  t.deepEqual(agent.readinessProbe!.httpGet, { path: '/healthz/ready', port: 15020 });
  t.true(pod.hostNetwork);
  t.is(pod.priorityClassName, 'system-node-critical');
});

test('the agent drops every capability and adds back only BPF, NET_ADMIN and SYS_ADMIN', async (t) => {
  const ds = (await docs('agent.yaml')).find((d) => d.kind === 'DaemonSet')!;
  const sc = ds.spec!.template!.spec.containers[0]!.securityContext!;
  t.deepEqual(sc.capabilities!.drop, ['ALL']);
  t.deepEqual([...sc.capabilities!.add!].sort(), ['BPF', 'NET_ADMIN', 'SYS_ADMIN']);
  t.true(sc.readOnlyRootFilesystem);
});

test('the control plane serves gRPC on 15012 and is ready on /healthz/ready', async (t) => {
  const deploy = (await docs('control-plane.yaml')).find((d) => d.kind === 'Deployment')!;
  const c = deploy.spec!.template!.spec.containers[0]!;
  t.deepEqual(c.ports!.map((p) => p.containerPort), [15012, 15014]);
  t.is(c.readinessProbe!.httpGet!.path, '/healthz/ready');
  t.deepEqual(c.securityContext!.capabilities!.drop, ['ALL']);
});

test("the mesh's own namespace is opted out", async (t) => {
  const ns = (await docs('namespace.yaml'))[0]!;
  t.is(ns.metadata.labels!['nodemesh.io/mesh'], 'disabled');
});

test('the agent authenticates as its node with the kubelet client certificate and verifies the control plane with the mesh root', async (t) => {
  const ds = (await docs('agent.yaml')).find((d) => d.kind === 'DaemonSet')!;
  const args = ds.spec!.template!.spec.containers[0]!.args!;
  t.true(args.includes('--node-credential=/var/lib/kubelet/pki/kubelet-client-current.pem'));
  t.true(args.some((a) => a.startsWith('--root-cert=')));
  t.false(args.some((a) => a.startsWith('--insecure')));
});

test('the control plane signs with the operator CA and checks node credentials against the cluster CA', async (t) => {
  const deploy = (await docs('control-plane.yaml')).find((d) => d.kind === 'Deployment')!;
  const args = deploy.spec!.template!.spec.containers[0]!.args!;
  for (const flag of ['--ca-dir=', '--ca-cert=', '--ca-key=', '--node-ca=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt']) {
    t.true(args.some((a) => a.startsWith(flag)), flag);
  }
  t.false(args.includes('--insecure'));
});
