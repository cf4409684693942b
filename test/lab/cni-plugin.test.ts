// The chained CNI plugin as the container runtime drives it: the compiled build/cni/nodemesh-cni
// run with the CNI environment and the network configuration (with prevResult) on stdin,
// against the agent's real CNI socket server (agent/datapath/cni-server.ts) over the real
// eBPF datapath, for network namespaces this test creates. Needs root; fails instead of
// skipping when CI=true. Everything it makes is named h10-cni-<pid>… and removed in
// after.always, which checks that it is gone.
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CniServer } from '../../agent/datapath/cni-server.js';
import { Enrollment } from '../../agent/datapath/enrollment.js';
import { PodNetnsScanner } from '../../agent/datapath/pod-netns.js';
import { Datapath, cgroup2Mount } from '../../agent/datapath/redirect.js';
import { packageRoot } from '../../common/paths.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { compileYaml, podYaml } from '../helpers/config-yaml.js';
import { eventually } from '../helpers/eventually.js';

const root = packageRoot();
const PLUGIN = path.join(root, 'build/cni/nodemesh-cni');

function preflight(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (netns, cgroups, bpf)';
  for (const f of ['build/bpf/redirect.bpf.o', 'build/Release/nodemesh_native.node', 'build/cni/nodemesh-cni'])
    if (!fs.existsSync(path.join(root, f))) return `${f} missing: run bash scripts/build.sh`;
  return undefined;
}
const cannot = preflight();
const serial = cannot && process.env.CI !== 'true' ? test.serial.skip : test.serial;
const cniTest = (title: string, fn: (t: ExecutionContext) => Promise<void>) =>
  serial(title, async (t) => {
    t.timeout(30_000);
    await fn(t);
  });

const id = process.pid % 100000;
const prefix = `h10-cni-${id}`;
const pinDir = `/sys/fs/bpf/${prefix}/v1`;
const ns = { meshed: `${prefix}-m`, plain: `${prefix}-p`, late: `${prefix}-l` };
const netnsPath = (n: string) => `/run/netns/${n}`;

const NODE = 'node-a';
const YAML = [
  `apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {nodemesh.io/mesh: enabled}}\n`,
  `apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n`,
  podYaml('web', { ns: 'shop', ip: '10.250.7.2', node: NODE }),
  podYaml('tool', { ns: 'plain', ip: '10.250.7.3', node: NODE }),
];
/** A namespace the snapshot does not have yet (just created), and a pod of it. */
const LATE = [
  `apiVersion: v1\nkind: Namespace\nmetadata: {name: fresh, labels: {nodemesh.io/mesh: enabled}}\n`,
  podYaml('late', { ns: 'fresh', ip: '10.250.7.4', node: NODE }),
];
/** Scheduled, being created: no IP yet, so not a Workload (as every pod is when its CNI ADD runs). */
const pendingPod = (name: string, namespace: string, annotations: Record<string, string> = {}) =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: ${namespace}, annotations: ${JSON.stringify(annotations)}}\nspec:\n  nodeName: ${NODE}\n  containers: [{name: main}]\nstatus: {phase: Pending}\n`;

interface Fixture {
  dir: string;
  socket: string;
  cgroups: string[];
  dp: Datapath;
  enrollment: Enrollment;
  server: CniServer | undefined;
  snapshot: Snapshot;
}
let fx: Fixture | undefined;
const cleanups: Array<() => void> = [];

function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const PREV_RESULT = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }],
  ips: [{ address: '10.250.7.2/24', gateway: '10.250.7.1', interface: 0 }],
  dns: {},
};

function netConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    type: 'nodemesh-cni',
    agentSocket: fx!.socket,
    timeoutSeconds: 10,
    prevResult: PREV_RESULT,
    ...over,
  };
}

interface PluginRun {
  code: number;
  stdout: string;
  json: Record<string, unknown> | undefined;
}

/** Runs the plugin exactly as a runtime does: CNI_* in the environment, the config on stdin. */
function plugin(
  command: string,
  pod: { namespace: string; name: string; netns?: string; containerId?: string },
  config: Record<string, unknown> | string,
): Promise<PluginRun> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod.containerId ?? `ctr-${pod.namespace}-${pod.name}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=ctr`,
  };
  if (pod.netns) env.CNI_NETNS = pod.netns;
  return new Promise((resolve, reject) => {
    const c = spawn(PLUGIN, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.on('error', reject);
    c.on('close', (code) => {
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, json });
    });
    c.stdin.end(typeof config === 'string' ? config : JSON.stringify(config));
  });
}

const cookie = (n: string) => Datapath.netnsCookie(netnsPath(n));
const enrolled = (n: string) => fx!.dp.enrolled().includes(cookie(n));

async function startServer(unknownPodWaitMs = 10_000): Promise<void> {
  fx!.server = await CniServer.listen({ path: fx!.socket, enrollment: fx!.enrollment, snapshot: () => fx!.snapshot, unknownPodWaitMs });
}

test.before(async () => {
  if (cannot) throw new Error(`CNI plugin tests cannot run: ${cannot}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cg2 = cgroup2Mount();
  const cgroups = [path.join(cg2, `${prefix}-pods`), path.join(cg2, `${prefix}-proxy`)];
  for (const cg of cgroups) {
    fs.mkdirSync(cg);
    cleanups.push(() => fs.rmdirSync(cg));
  }
  for (const n of Object.values(ns)) {
    sh('ip', 'netns', 'add', n);
    cleanups.push(() => sh('ip', 'netns', 'del', n));
  }
  const dp = await Datapath.open({
    pinDir,
    podsCgroup: cgroups[0]!,
    proxyCgroup: cgroups[1]!,
    proxyIp: '10.250.7.1',
    proxyPort: 15001,
    mark: 0x6e6d,
  });
  cleanups.push(() => {
    dp.close({ unpin: true });
    Datapath.cleanup(pinDir);
  });
  // the scan directory is empty: whatever is enrolled here was enrolled through the plugin
  const scanDir = path.join(dir, 'netns');
  fs.mkdirSync(scanDir);
  fx = {
    dir,
    socket: path.join(dir, 'agent', 'cni.sock'),
    cgroups,
    dp,
    enrollment: new Enrollment(NODE, dp, new PodNetnsScanner(scanDir)),
    server: undefined,
    snapshot: compileYaml(YAML),
  };
  await startServer();
});

test.after.always('everything the tests made is gone: socket, netns, pins, cgroups', async (t) => {
  await fx?.server?.close();
  for (const c of cleanups.reverse()) {
    try {
      c();
    } catch {
      // the checks below name what is left
    }
  }
  if (!fx) return;
  const list = sh('ip', 'netns', 'list');
  for (const n of Object.values(ns)) t.false(list.includes(n), `netns ${n} left`);
  for (const p of [fx.dir, path.dirname(pinDir), ...fx.cgroups]) t.false(fs.existsSync(p), `${p} left`);
});

cniTest('VERSION answers the supported versions, and a config in a version it does not speak gets error code 1', async (t) => {
  const v = await plugin('VERSION', { namespace: '', name: '' }, { cniVersion: '1.0.0' });
  t.is(v.code, 0);
  t.deepEqual(v.json, { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  const old = await plugin('ADD', { namespace: 'shop', name: 'web', netns: netnsPath(ns.meshed) }, netConfig({ cniVersion: '0.2.0' }));
  t.is(old.code, 1);
  t.like(old.json, { cniVersion: '0.2.0', code: 1, msg: 'incompatible CNI version' });
  t.false(enrolled(ns.meshed));
});

cniTest(
  'ADD of a meshed pod enrolls its netns before the plugin returns, passes prevResult through, survives a reconcile; CHECK passes; DEL releases and is idempotent',
  async (t) => {
    const pod = { namespace: 'shop', name: 'web', netns: netnsPath(ns.meshed) };
    t.false(enrolled(ns.meshed));
    const add = await plugin('ADD', pod, netConfig());
    t.is(add.code, 0, add.stdout);
    t.deepEqual(add.json, PREV_RESULT);
    t.true(enrolled(ns.meshed), 'enrolled when ADD returned');
    // the scan does not see it (its directory is empty): the CNI enrollment stays anyway
    await fx!.enrollment.reconcile(fx!.snapshot);
    t.true(enrolled(ns.meshed), 'still enrolled after a reconcile');
    const check = await plugin('CHECK', pod, netConfig());
    t.is(check.code, 0, check.stdout);
    t.is(check.stdout, '');
    const del = await plugin('DEL', pod, netConfig({ prevResult: undefined }));
    t.is(del.code, 0, del.stdout);
    t.false(enrolled(ns.meshed), 'released by DEL');
    const again = await plugin('DEL', { namespace: 'shop', name: 'web' }, netConfig());
    t.is(again.code, 0, 'DEL of what is gone (no CNI_NETNS) succeeds');
  },
);

cniTest('a pod enrolled by ADD is released by the reconcile once the snapshot says it is not meshed', async (t) => {
  const pod = { namespace: 'shop', name: 'web', netns: netnsPath(ns.meshed) };
  t.is((await plugin('ADD', pod, netConfig())).code, 0);
  t.true(enrolled(ns.meshed));
  const optedOut = YAML.map((d) => d.replace('name: web\n  namespace: shop', 'name: web\n  namespace: shop\n  annotations: {nodemesh.io/mesh: disabled}'));
  const unmeshed = compileYaml(optedOut);
  t.false(unmeshed.workloads.find((w) => w.uid === 'shop/web')!.meshed);
  await fx!.enrollment.reconcile(unmeshed);
  t.false(enrolled(ns.meshed), 'released by the reconcile');
  t.is((await plugin('DEL', pod, netConfig())).code, 0, 'DEL after that still succeeds');
});

cniTest('ADD of an unmeshed pod passes prevResult through untouched and enrolls nothing', async (t) => {
  const add = await plugin('ADD', { namespace: 'plain', name: 'tool', netns: netnsPath(ns.plain) }, netConfig());
  t.is(add.code, 0, add.stdout);
  t.deepEqual(add.json, PREV_RESULT);
  t.false(enrolled(ns.plain));
});

cniTest('ADD of a pod whose namespace the snapshot does not know yet waits for the snapshot that has it, then enrolls', async (t) => {
  const pod = { namespace: 'fresh', name: 'late', netns: netnsPath(ns.late) };
  const adding = plugin('ADD', pod, netConfig());
  await eventually(() => fx!.server!.waiting > 0, 10_000, 'the ADD to wait for the snapshot');
  fx!.snapshot = compileYaml([...YAML, ...LATE]);
  fx!.server!.snapshotChanged();
  const add = await adding;
  t.is(add.code, 0, add.stdout);
  t.true(enrolled(ns.late));
  t.is((await plugin('DEL', pod, netConfig())).code, 0);
  t.false(enrolled(ns.late));
});

cniTest('a pod without an IP yet (a real ADD) is answered at once by its namespace, or by its own opt-out annotation', async (t) => {
  fx!.snapshot = compileYaml([...YAML, pendingPod('fresh', 'shop'), pendingPod('shy', 'shop', { 'nodemesh.io/mesh': 'disabled' })]);
  const fresh = { namespace: 'shop', name: 'fresh', netns: netnsPath(ns.late) };
  const add = await plugin('ADD', fresh, netConfig());
  t.is(add.code, 0, add.stdout);
  t.true(enrolled(ns.late), 'meshed by its namespace label');
  t.is((await plugin('DEL', fresh, netConfig())).code, 0);
  const shy = await plugin('ADD', { namespace: 'shop', name: 'shy', netns: netnsPath(ns.late) }, netConfig());
  t.is(shy.code, 0, shy.stdout);
  t.deepEqual(shy.json, PREV_RESULT);
  t.false(enrolled(ns.late), 'its own nodemesh.io/mesh: disabled wins');
});

cniTest('ADD of a pod no snapshot ever has is refused with a CNI error (fail closed) once the bounded wait is over', async (t) => {
  await fx!.server!.close();
  await startServer(300);
  const add = await plugin('ADD', { namespace: 'nowhere', name: 'ghost', netns: netnsPath(ns.late) }, netConfig());
  t.is(add.code, 1);
  t.like(add.json, { cniVersion: '1.0.0', code: 100, msg: 'the nodemesh agent refused to enroll the pod (fail closed)' });
  t.regex(String(add.json?.details), /nowhere\/ghost .*not in the control plane's snapshot after 300 ms/);
  t.false(enrolled(ns.late));
});

cniTest(
  'with the agent down, a meshed pod fails creation with a CNI error, a pod of an excluded namespace is created, and DEL succeeds',
  async (t) => {
    await fx!.server!.close();
    fx!.server = undefined;
    t.false(fs.existsSync(fx!.socket), 'the socket file went with the server');
    const add = await plugin('ADD', { namespace: 'shop', name: 'web', netns: netnsPath(ns.meshed) }, netConfig());
    t.is(add.code, 1);
    t.like(add.json, {
      cniVersion: '1.0.0',
      code: 11,
      msg: 'the nodemesh agent is unreachable, so the pod cannot be meshed (fail closed)',
    });
    t.regex(String(add.json?.details), /shop\/web.*cni\.sock/);
    t.false(enrolled(ns.meshed));
    const system = await plugin('ADD', { namespace: 'kube-system', name: 'coredns', netns: netnsPath(ns.plain) }, netConfig());
    t.is(system.code, 0, system.stdout);
    t.deepEqual(system.json, PREV_RESULT);
    const del = await plugin('DEL', { namespace: 'shop', name: 'web', netns: netnsPath(ns.meshed) }, netConfig());
    t.is(del.code, 0, 'DEL never fails a pod deletion because the agent is away');
    await startServer();
  },
);

cniTest('bad input gets the CNI error codes: no prevResult (7), not JSON (6), no CNI_NETNS on ADD (4)', async (t) => {
  const pod = { namespace: 'shop', name: 'web', netns: netnsPath(ns.meshed) };
  t.like((await plugin('ADD', pod, netConfig({ prevResult: undefined }))).json, { code: 7 });
  t.like((await plugin('ADD', pod, '{"cniVersion": "1.0.0", ')).json, { code: 6 });
  t.like((await plugin('ADD', { namespace: 'shop', name: 'web' }, netConfig())).json, { code: 4, msg: 'CNI_NETNS is not set' });
  t.false(enrolled(ns.meshed));
});

cniTest('reconciles coalesce (a burst of snapshots queues one), and the netns scan reads no netns an ADD named or is naming', async (t) => {
  // last in this file: a second Enrollment over the same datapath owns its cookies from here on
  class CountingScanner extends PodNetnsScanner {
    scans: string[][] = [];
    override async scan(skip?: (inode: number) => boolean) {
      const found = await super.scan(skip);
      this.scans.push(found.map((n) => path.basename(n.path)));
      return found;
    }
  }
  const dir = path.join(fx!.dir, 'netns-coalesce');
  fs.mkdirSync(dir);
  for (const n of [ns.meshed, ns.plain]) fs.symlinkSync(netnsPath(n), path.join(dir, n));
  const scanner = new CountingScanner(dir);
  const en = new Enrollment(NODE, fx!.dp, scanner);

  await Promise.all(Array.from({ length: 20 }, () => en.reconcile(fx!.snapshot)));
  t.is(scanner.scans.length, 1, '20 calls before the first started: one reconcile');
  t.deepEqual(scanner.scans[0]!.sort(), [ns.meshed, ns.plain].sort(), 'both netns read while no ADD named them');

  // an ADD and reconciles at once: the ADD's netns is left out of every scan from then on
  const add = en.enrollSandbox(netnsPath(ns.meshed), 'ctr-coalesce', { uid: 'shop/web', ip: '10.250.7.2', failOpen: false });
  const during = [en.reconcile(fx!.snapshot), en.reconcile(fx!.snapshot)];
  await add;
  await Promise.all(during);
  await en.reconcile(fx!.snapshot);
  t.true(scanner.scans.length <= 3, `${scanner.scans.length} scans for 3 reconcile calls, two of them joined`);
  for (const s of scanner.scans.slice(1)) t.deepEqual(s, [ns.plain], 'the ADD’s netns is not read');
  t.true(enrolled(ns.meshed), 'the ADD enrolled it');
  t.true(await en.releaseSandbox('ctr-coalesce'));
  t.false(enrolled(ns.meshed));
});
