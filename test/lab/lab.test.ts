// The lab: YAML → network namespaces, cgroups and processes, and back to nothing.
// The model tests run anywhere; the others build real labs and need root (they FAIL,
// not skip, without root when CI=true). Each test uses its own lab name (lt-…), so they
// run in parallel with each other and with other test files' labs.
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { ConfigError } from '../../common/errors.js';
import { agentArgv, controlArgv } from '../../deploy/lab/lab-commands.js';
import { writeConfigDir } from '../../deploy/lab/lab-config-dir.js';
import { parseLabModel } from '../../deploy/lab/lab-model.js';
import { hostsFile, planLab } from '../../deploy/lab/lab-plan.js';
import { labDown, labExec, labExecCommand, labNodeAddresses, labState, labStatus, labUp, type LabState } from '../../deploy/lab/lab.js';
import { packagePath } from '../../common/paths.js';
import { eventually } from '../helpers/eventually.js';
import { slotLinksLeft } from '../helpers/lab-leftovers.js';

const FIXTURES = packagePath('test', 'fixtures');
const BASIC = path.join(FIXTURES, 'lab-basic');
const FAKE_MESH = path.join(FIXTURES, 'lab-fake-mesh');
const FAKE_CLI = path.join(FAKE_MESH, 'fake-nodemesh.js');
const LAB_JS = packagePath('dist', 'deploy', 'lab', 'lab.js');
const CGROUP2 = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2')?.[1];

const isRoot = process.getuid?.() === 0;
type Impl = (t: ExecutionContext) => Promise<void>;
/** A test that needs root: skipped without root, except in CI where it fails. */
function rootTest(title: string, impl: Impl): void {
  if (isRoot) test(title, impl);
  else if (process.env.CI === 'true') test(title, (t) => t.fail('this test needs root (network namespaces, cgroups): run the tests as root'));
  else test.skip(title, impl);
}

function sh(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs argv in a lab target and captures its output. */
async function inLab(name: string, target: string, argv: string[]) {
  const cmd = await labExecCommand({ name, target, argv });
  return sh(cmd.argv[0]!, cmd.argv.slice(1));
}

function getJson(url: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { timeout: 3_000 }, (res) => {
        let data = '';
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) : undefined }));
      })
      .on('error', reject);
  });
}

/** A process that has not exited (a zombie waiting for init to reap it has). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Everything of lab `name` that still exists: the tests want an empty list after down. */
async function leftovers(name: string, slot: number | null, pids: number[]): Promise<string[]> {
  const out: string[] = [];
  const netns = (await sh('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!);
  out.push(...netns.filter((n) => n.startsWith(`nm-${name}-`)).map((n) => `netns ${n}`));
  if (slot !== null) out.push(...(await slotLinksLeft(name, slot)).map((l) => `link ${l}`));
  if (CGROUP2 && (await exists(path.join(CGROUP2, 'nodemesh-lab', name)))) out.push(`cgroup ${name}`);
  for (const e of await readdir('/sys/fs/bpf').catch(() => [] as string[])) if (e.startsWith(`nodemesh-lab-${name}-`)) out.push(`pin ${e}`);
  for (const e of await readdir('/etc/netns').catch(() => [] as string[])) if (e.startsWith(`nm-${name}-`)) out.push(`/etc/netns/${e}`);
  if (await exists(`/run/nodemesh/labs/${name}`)) out.push('state dir');
  for (const f of await readdir('/run/nodemesh/labs/.slots').catch(() => [] as string[])) {
    if ((await readFile(`/run/nodemesh/labs/.slots/${f}`, 'utf8').catch(() => '')) === name) out.push(`slot claim ${f}`);
  }
  for (const pid of pids) if (await running(pid)) out.push(`process ${pid}`);
  return out;
}

async function downAndCheck(t: ExecutionContext, state: Pick<LabState, 'name' | 'slot' | 'processes'>): Promise<void> {
  await labDown({ name: state.name });
  t.deepEqual(await leftovers(state.name, state.slot, state.processes.map((p) => p.pid)), [], `lab ${state.name} left resources behind`);
}

/** Always removes the lab at the end of a test, whatever happened. */
function cleanup(t: ExecutionContext, name: string): void {
  t.teardown(async () => {
    await labDown({ name }).catch(() => undefined);
  });
}

// ---------------------------------------------------------------------------- model

const NODE = 'apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n';

test('the model reads nodes, pods and services, creates implied namespaces and allocates ClusterIPs around the given ones', (t) => {
  const m = parseLabModel('/lab', [
    { name: 'a.yaml', text: NODE },
    {
      name: 'b.yaml',
      text: [
        'apiVersion: v1\nkind: Service\nmetadata: {name: one, namespace: x}\nspec: {ports: [{port: 80}]}',
        'apiVersion: v1\nkind: Service\nmetadata: {name: two, namespace: x}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}',
        'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: n1, containers: [{name: c, command: [sleep], args: ["9"], ports: [{containerPort: 80}]}]}',
        'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {}',
      ].join('\n---\n'),
    },
  ]);
  t.deepEqual(m.nodes.map((n) => n.name), ['n1']);
  t.deepEqual(m.services.map((s) => [s.name, s.clusterIP, s.allocated]), [['one', '10.96.0.11', true], ['two', '10.96.0.10', false]]);
  t.deepEqual(m.pods[0]!.containers[0]!.argv, ['sleep', '9']);
  t.is(m.pods[0]!.namespace, 'default');
  t.deepEqual(m.namespaces.map((n) => [n.name, n.declared]).sort(), [['default', false], ['x', false]]);
  t.is(m.files[1]!.documents.length, 4, 'other kinds are kept, to be copied through');
});

test('model errors name the file, line, resource and field', (t) => {
  const bad = (text: string) => t.throws(() => parseLabModel('/lab', [{ name: 'bad.yaml', text: NODE + '---\n' + text }]), { instanceOf: ConfigError });
  let e = bad('apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeName: n1\n  containers:\n    - name: c\n      image: nginx\n');
  t.is(e.code, 'NM_ERR_CONFIG_FIELD');
  t.regex(e.message, /^bad\.yaml:12: Pod default\/p: field spec\.containers\[0\]\.command: the lab ignores images/);
  e = bad('apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: n9, containers: [{name: c, command: [x]}]}');
  t.regex(e.message, /Pod default\/p: field spec\.nodeName: no Node "n9" \(declared: n1\)/);
  e = bad('apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n    - port: 99999\n');
  t.regex(e.message, /bad\.yaml:11: Service default\/s: field spec\.ports\[0\]\.port: expected an integer 1-65535/);
  e = bad('apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n');
  t.is(e.code, 'NM_ERR_CONFIG_KIND');
  e = bad('a: [unclosed\n');
  t.is(e.code, 'NM_ERR_CONFIG_YAML');
  t.regex(e.message, /^bad\.yaml:\d+: not valid YAML/);
  e = bad('apiVersion: v1\nkind: Service\nmetadata: {name: s1}\nspec: {clusterIP: 10.96.1.1, ports: [{port: 1}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s2}\nspec: {clusterIP: 10.96.1.1, ports: [{port: 1}]}');
  t.is(e.code, 'NM_ERR_CONFIG_CONFLICT');
  t.regex(e.message, /Service default\/s2: field spec\.clusterIP: clusterIP 10\.96\.1\.1 is already used by Service default\/s1/);
});

test('the plan addresses nodes and pods from the slot, and a pod hosts file resolves every service name', (t) => {
  const m = parseLabModel('/lab', [
    { name: 'a.yaml', text: NODE + '---\napiVersion: v1\nkind: Node\nmetadata: {name: n2}' },
    {
      name: 'b.yaml',
      text: [
        'apiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: x, labels: {app: a}}\nspec: {nodeName: n2, containers: [{name: c, command: [x]}]}',
        'apiVersion: v1\nkind: Pod\nmetadata: {name: p2, namespace: y}\nspec: {nodeName: n2, containers: [{name: c, command: [x]}]}',
        'apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: x}\nspec: {ports: [{port: 80}]}',
        'apiVersion: v1\nkind: Service\nmetadata: {name: h, namespace: x}\nspec: {clusterIP: None, selector: {app: a}, ports: [{port: 80}]}',
      ].join('\n---\n'),
    },
  ]);
  const s = planLab({ name: 'lt-plan', slot: 3, cgroupRoot: '/cg/nodemesh-lab/lt-plan', model: m, agents: true, control: true });
  t.deepEqual(s.bridge, { name: 'nm3b', ip: '172.31.243.1', cidr: '172.31.243.0/24' });
  t.deepEqual(s.nodes.map((n) => [n.name, n.ip, n.podCidr, n.netns, n.vethRoot, n.pinDir]), [
    ['n1', '172.31.243.10', '10.244.0.0/24', 'nm-lt-plan-n1', 'nm3n0', '/sys/fs/bpf/nodemesh-lab-lt-plan-n1'],
    ['n2', '172.31.243.11', '10.244.1.0/24', 'nm-lt-plan-n2', 'nm3n1', '/sys/fs/bpf/nodemesh-lab-lt-plan-n2'],
  ]);
  t.deepEqual(s.pods.map((p) => [p.name, p.ip, p.netns, p.vethNode, p.cgroup]), [
    ['p1', '10.244.1.2', 'nm-lt-plan-x-p1', 'nm3p0', '/cg/nodemesh-lab/lt-plan/n2/pods/x-p1'],
    ['p2', '10.244.1.3', 'nm-lt-plan-y-p2', 'nm3p1', '/cg/nodemesh-lab/lt-plan/n2/pods/y-p2'],
  ]);
  t.is(s.nodes[1]!.agentCgroup, '/cg/nodemesh-lab/lt-plan/n2/agent');
  t.is(s.pods[0]!.containers[0]!.env.POD_NAME, 'p1');
  const hosts = hostsFile(s, s.pods[0]!, m);
  t.regex(hosts, /^10\.96\.0\.10\ts\.x\.svc\.cluster\.local s\.x s$/m);
  t.regex(hosts, /^10\.244\.1\.2\th\.x\.svc\.cluster\.local h\.x h$/m, 'a headless service resolves to its pods');
  t.regex(hosts, /^10\.244\.1\.2\tp1$/m);
  t.notRegex(hostsFile(s, s.pods[1]!, m), /\ts\.x\.svc\.cluster\.local s\.x s$/m, 'short names only within the namespace');
});

test('names that would collide when joined with - are made unique', (t) => {
  const m = parseLabModel('/lab', [
    {
      name: 'a.yaml',
      text: [
        'apiVersion: v1\nkind: Node\nmetadata: {name: web-client}',
        'apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: web}\nspec: {nodeName: web-client, containers: [{name: c, command: [x]}]}',
        'apiVersion: v1\nkind: Pod\nmetadata: {name: b-c, namespace: a}\nspec: {nodeName: web-client, containers: [{name: c, command: [x]}]}',
        'apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: a-b}\nspec: {nodeName: web-client, containers: [{name: c, command: [x]}]}',
        'apiVersion: v1\nkind: Pod\nmetadata: {name: ' + 'p'.repeat(63) + ', namespace: ' + 'n'.repeat(63) + '}\nspec: {nodeName: web-client, containers: [{name: c, command: [x]}]}',
      ].join('\n---\n'),
    },
  ]);
  const s = planLab({ name: 'lt-names', slot: 0, cgroupRoot: '/cg', model: m, agents: false, control: false });
  const netns = [...s.nodes.map((n) => n.netns), ...s.pods.map((p) => p.netns)];
  t.is(new Set(netns).size, netns.length, netns.join(' '));
  t.true(netns.every((n) => n.startsWith('nm-lt-names-') && n.length <= 64));
  t.is(s.nodes[0]!.netns, 'nm-lt-names-web-client');
  t.is(new Set(s.pods.map((p) => p.cgroup)).size, s.pods.length);
  t.is(s.controlAddress, null, 'no control plane: no address');
});

test('the control plane config dir gets the resources completed as the API server would, other kinds as written', async (t) => {
  const { loadLabModel } = await import('../../deploy/lab/lab-model.js');
  const m = await loadLabModel(BASIC);
  const s = planLab({ name: 'lt-config', slot: 0, cgroupRoot: '/cg', model: m, agents: false, control: false });
  s.configDir = await mkdtemp(path.join(os.tmpdir(), 'lt-config-'));
  t.teardown(() => rm(s.configDir, { recursive: true, force: true }));
  await writeConfigDir(s, m);
  t.deepEqual((await readdir(s.configDir)).sort(), ['_lab-namespaces.yaml', 'cluster.yaml', 'services.yaml']);
  const docs = (f: string) => readFile(path.join(s.configDir, f), 'utf8').then((x) => parseAllDocuments(x).map((d) => d.toJS()).filter(Boolean));
  const cluster = await docs('cluster.yaml');
  const serverB = cluster.find((d: any) => d.metadata.name === 'server-b');
  t.like(serverB, { metadata: { namespace: 'web' }, status: { phase: 'Running', podIP: '10.244.1.2', hostIP: '172.31.240.11' } });
  t.like(cluster.find((d: any) => d.kind === 'Node' && d.metadata.name === 'node-b'), { spec: { podCIDR: '10.244.1.0/24' }, status: { addresses: [{ type: 'InternalIP', address: '172.31.240.11' }, { type: 'Hostname', address: 'node-b' }] } });
  const services = await docs('services.yaml');
  t.like(services[0], { spec: { clusterIP: '10.96.0.10' } });
  t.like(services[1], { metadata: { namespace: 'tools' }, spec: { clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'] } });
  t.deepEqual(services[2], parseAllDocuments(await readFile(path.join(BASIC, 'services.yaml'), 'utf8'))[2]!.toJS());
  const ns = (await docs('_lab-namespaces.yaml')).map((d: any) => d.metadata.name).sort();
  t.deepEqual(ns, ['tools', 'web']);
});

test('the agent and control plane command lines are the CLI contract', (t) => {
  t.deepEqual(controlArgv('/r/bin/nodemesh.js', { configDir: '/c', grpc: '172.31.240.1:15012', admin: '172.31.240.1:15014', caDir: '/s/ca', nodeCa: '/s/node-ca/ca-cert.pem' }).slice(1), [
    '/r/bin/nodemesh.js', 'control', '--config-dir', '/c', '--grpc', '172.31.240.1:15012', '--admin', '172.31.240.1:15014',
    '--ca-dir', '/s/ca', '--node-ca', '/s/node-ca/ca-cert.pem',
  ]);
  const a = agentArgv('/r/bin/nodemesh.js', { node: 'n', control: '172.31.240.1:15012', podsCgroup: '/cg/n/pods', pinDir: '/sys/fs/bpf/nodemesh-lab-l-n', proxyIp: '172.31.240.10', admin: '172.31.240.10:15020', netnsDir: '/d', rootCert: '/s/ca/trust-bundle.pem', nodeCredential: '/s/node-credentials/n' });
  t.deepEqual(a.slice(-4), ['--root-cert', '/s/ca/trust-bundle.pem', '--node-credential', '/s/node-credentials/n']);
  t.deepEqual(a.slice(1, 15), [
    '/r/bin/nodemesh.js', 'agent', '--node', 'n', '--control', '172.31.240.1:15012', '--pods-cgroup', '/cg/n/pods',
    '--pin-dir', '/sys/fs/bpf/nodemesh-lab-l-n', '--proxy-ip', '172.31.240.10', '--admin', '172.31.240.10:15020',
  ]);
});

// ---------------------------------------------------------------------- real labs

rootTest('a lab without agents: pods reach each other across nodes by pod IP, resolve services by name, and lab down leaves nothing', async (t) => {
  const name = 'lt-net';
  cleanup(t, name);
  const state = await labUp({ dir: BASIC, name, agents: false });
  t.is(state.status, 'ready');
  t.deepEqual(await labNodeAddresses(name), { 'node-a': state.nodes[0]!.ip, 'node-b': state.nodes[1]!.ip });
  const serverA = state.pods.find((p) => p.name === 'server-a')!;

  // across nodes, by pod IP (client is on node-b, server-a on node-a)
  const r = await inLab(name, 'web/client', ['curl', '-sS', '-m', '5', `http://${serverA.ip}:8080/hello`]);
  t.is(r.code, 0, r.stderr);
  const answer = JSON.parse(r.stdout);
  t.is(answer.pod, 'server-a');
  t.is(answer.path, '/hello');
  t.regex(answer.remote, new RegExp(`${state.pods.find((p) => p.name === 'client')!.ip.replace(/\./g, '\\.')}:\\d+$`));

  // names: short within the namespace, name.ns, FQDN; the pod's own name
  const hosts = await inLab(name, 'web/client', ['getent', 'hosts', 'server', 'other.tools', 'server.web.svc.cluster.local', 'client']);
  t.is(hosts.code, 0, hosts.stderr);
  const other = state.services.find((s) => s.name === 'other')!;
  t.regex(hosts.stdout, /^10\.96\.0\.10\s+server\.web\.svc\.cluster\.local/m);
  t.regex(hosts.stdout, new RegExp(`^${other.clusterIp.replace(/\./g, '\\.')}\\s+other\\.tools`, 'm'));

  // not meshed: dialling a ClusterIP fails at once instead of hanging
  const started = Date.now();
  const dial = await inLab(name, 'web/client', ['curl', '-sS', '-m', '10', 'http://server/']);
  t.is(dial.code, 7, dial.stderr);
  t.true(Date.now() - started < 3_000, `ClusterIP dial took ${Date.now() - started} ms`);

  // the pod's processes are in the pod's cgroup; lab exec too
  const cg = await inLab(name, 'web/server-b', ['cat', '/proc/self/cgroup']);
  t.regex(cg.stdout, new RegExp(`^0::/nodemesh-lab/${name}/node-b/pods/web-server-b$`, 'm'));
  const serverPid = state.processes.find((p) => p.name === 'web/server-b/echo')!.pid;
  t.regex(await readFile(`/proc/${serverPid}/cgroup`, 'utf8'), new RegExp(`^0::/nodemesh-lab/${name}/node-b/pods/web-server-b$`, 'm'));
  t.regex(await readFile(`/proc/${serverPid}/environ`, 'utf8'), /(^|\0)WHERE=node-b\0/, 'fieldRef env is resolved');

  // exit codes propagate, from pods and nodes
  t.is(await labExec({ name, target: 'web/client', argv: ['sh', '-c', 'exit 7'] }), 7);
  const node = await inLab(name, 'node/node-a', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  t.regex(node.stdout, new RegExp(state.nodes[0]!.ip.replace(/\./g, '\\.')));
  t.is(await labExec({ name, target: 'node/node-a', argv: ['false'] }), 1);
  await t.throwsAsync(labExecCommand({ name, target: 'web/nope', argv: ['true'] }), { message: /has no pod web\/nope/ });

  const status = await labStatus({ name });
  t.true(status.processes.every((p) => p.alive));
  await downAndCheck(t, state);
});

rootTest('two labs with different names coexist on the same pod CIDRs, and removing one keeps the other', async (t) => {
  cleanup(t, 'lt-two-a');
  cleanup(t, 'lt-two-b');
  const [a, b] = await Promise.all([labUp({ dir: BASIC, name: 'lt-two-a', agents: false }), labUp({ dir: BASIC, name: 'lt-two-b', agents: false })]);
  t.not(a.slot, b.slot);
  t.not(a.bridge!.cidr, b.bridge!.cidr);
  t.is(a.pods[0]!.ip, b.pods[0]!.ip, 'pod CIDRs repeat across labs');
  for (const s of [a, b]) {
    const r = await inLab(s.name, 'web/client', ['curl', '-sS', '-m', '5', `http://${s.pods[0]!.ip}:8080/`]);
    t.is(r.code, 0, r.stderr);
  }
  await downAndCheck(t, a);
  const still = await inLab('lt-two-b', 'web/client', ['curl', '-sS', '-m', '5', `http://${b.pods[0]!.ip}:8080/`]);
  t.is(still.code, 0, 'lab b still works after lab a is gone');
  t.is(JSON.parse(still.stdout).pod, 'server-a');
  await downAndCheck(t, b);
});

rootTest('agents run in their node netns and agent cgroup, and pods start only once every agent is ready', async (t) => {
  const name = 'lt-agents';
  cleanup(t, name);
  const state = await labUp({ dir: FAKE_MESH, name, cli: FAKE_CLI, env: { FAKE_AGENT_READY_DELAY_MS: '800' } });
  const control = await getJson(`http://${state.controlAddress!.admin}/debug/self`);
  t.is(control.body.cgroup, `/nodemesh-lab/${name}/control`);
  t.deepEqual(control.body.configFiles, ['cluster.yaml'], 'the config dir is written before the control plane starts; demo is declared, so no implied namespaces');
  const firstPod = Math.min(...state.processes.filter((p) => p.role === 'pod').map((p) => Date.parse(p.startedAt)));
  for (const n of state.nodes) {
    const self = (await getJson(`http://${n.ip}:15020/debug/self`)).body;
    t.is(self.cgroup, `/nodemesh-lab/${name}/${n.name}/agent`);
    t.like(self.flags, { node: n.name, control: state.controlAddress!.grpc, 'pods-cgroup': n.podsCgroup, 'pin-dir': n.pinDir, 'proxy-ip': n.ip, admin: `${n.ip}:15020` });
    t.true(self.readyAt > 0 && self.readyAt <= firstPod, `agent ${n.name} ready at ${self.readyAt}, first pod started at ${firstPod}`);
    t.true(await exists(n.pinDir));
  }
  t.deepEqual(await readdir(state.nodes[0]!.netnsDir), [`nm-${name}-demo-server-a`], "each node's netns dir links its own pods");
  const agents = state.processes.filter((p) => p.role === 'agent');
  const report = await labDown({ name });
  t.true(report.processes >= 5);
  t.deepEqual(await leftovers(name, state.slot, state.processes.map((p) => p.pid)), []);
  t.is(agents.length, 2);
});

rootTest('an agent that never gets ready fails lab up with its log path, before any pod starts', async (t) => {
  const name = 'lt-notready';
  cleanup(t, name);
  const err = await t.throwsAsync(labUp({ dir: FAKE_MESH, name, cli: FAKE_CLI, env: { FAKE_AGENT_NEVER_READY: '1' }, timeouts: { agentsMs: 1_500 } }));
  t.is((err as any).code, 'NM_ERR_LAB');
  t.regex(err!.message, new RegExp(`agent of node node-a is not ready after 1500 ms .*HTTP 503.*see its log /run/nodemesh/labs/${name}/logs/agent-node-a\\.log`));
  t.regex(err!.message, /nodemesh lab down --name lt-notready/);
  const state = await labState(name);
  t.is(state.status, 'failed');
  t.deepEqual(state.processes.filter((p) => p.role === 'pod'), []);
  await downAndCheck(t, state);
});

rootTest('a pod whose process exits fails lab up with the pod, the command and its log', async (t) => {
  const name = 'lt-badpod';
  cleanup(t, name);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lt-badpod-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    path.join(dir, 'lab.yaml'),
    NODE + '---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: n1, containers: [{name: c, command: [sh, -c, "echo boom >&2; exit 3"], ports: [{containerPort: 80}]}]}\n',
  );
  const err = await t.throwsAsync(labUp({ dir, name, agents: false, timeouts: { podsMs: 10_000 } }));
  t.regex(err!.message, /container c of pod default\/p exited \(`sh -c echo boom >&2; exit 3`, cwd the lab dir\); see its log \/run\/nodemesh\/labs\/lt-badpod\/logs\/pods\/default_p_c\.log:\n\s+\| boom/);
  await downAndCheck(t, await labState(name));
});

rootTest('lab down cleans a lab whose lab up was killed half-way', async (t) => {
  const name = 'lt-crash';
  cleanup(t, name);
  const script = `import(${JSON.stringify(LAB_JS)}).then((m) => m.labUp({ dir: ${JSON.stringify(FAKE_MESH)}, name: ${JSON.stringify(name)}, cli: ${JSON.stringify(FAKE_CLI)}, env: { FAKE_AGENT_READY_DELAY_MS: '60000' } }))`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  // kill -9 `lab up` once the agents run (they never get ready): control, agents, netns exist
  let state: LabState | undefined;
  await eventually(
    async () => {
      state = await labState(name).catch(() => undefined);
      return (state?.processes.length ?? 0) >= 3;
    },
    // a failure bound: lab up may first wait its turn for the slot lock (up to 60 s while other
    // labs start beside it), then start three processes on a loaded machine
    90_000,
    'lab up to start the control plane and two agents',
    50,
  ).catch(() => {}); // the assertions below say what was missing
  child.kill('SIGKILL');
  t.truthy(state, 'lab up wrote its state');
  t.is(state!.processes.length, 3, 'control plane and two agents were running');
  t.is(state!.status, 'creating');
  await downAndCheck(t, state!);
});

rootTest('lab down sweeps a lab by name when its processes were killed and its state file is gone, and lab up replaces a leftover lab', async (t) => {
  const name = 'lt-lost';
  cleanup(t, name);
  const state = await labUp({ dir: FAKE_MESH, name, cli: FAKE_CLI });
  // crash everything: agents die without unpinning, the state file is lost
  for (const p of state.processes) process.kill(p.pid, 'SIGKILL');
  await unlink(`/run/nodemesh/labs/${name}/state.json`);
  t.true(await exists(state.nodes[0]!.pinDir), 'a killed agent leaves its pins');
  // a new lab up of the same name first removes the leftovers
  const again = await labUp({ dir: FAKE_MESH, name, cli: FAKE_CLI });
  t.is(again.status, 'ready');
  for (const p of again.processes) process.kill(p.pid, 'SIGKILL');
  await unlink(`/run/nodemesh/labs/${name}/state.json`);
  await labDown({ name });
  t.deepEqual(await leftovers(name, again.slot, [...state.processes, ...again.processes].map((p) => p.pid)), []);
});

rootTest('the sample app runs in the lab: the frontend answers by pod IP and the client drives traffic', async (t) => {
  const name = 'lt-sample';
  cleanup(t, name);
  const dir = packagePath('deploy', 'lab', 'samples');
  const yaml = parseYaml(String((await readFile(path.join(dir, 'app.yaml'), 'utf8')).split('\n---\n')[2]));
  t.is(yaml.metadata.labels['nodemesh.io/mesh'], 'enabled');
  const state = await labUp({ dir, name, agents: false });
  const backend2 = state.pods.find((p) => p.name === 'backend-2')!;
  const r = await inLab(name, 'demo/frontend', ['curl', '-sS', '-m', '5', `http://${backend2.ip}:8080/x`]);
  t.is(JSON.parse(r.stdout).pod, 'backend-2');
  // without the mesh the frontend cannot reach the backend Service: it answers 502, fast
  const f = await inLab(name, 'demo/client', ['curl', '-sS', '-m', '5', `http://${state.pods.find((p) => p.name === 'frontend')!.ip}:8080/`]);
  const answer = JSON.parse(f.stdout);
  t.is(answer.frontend.pod, 'frontend');
  t.regex(answer.error, /EHOSTUNREACH/);
  await downAndCheck(t, state);
});
