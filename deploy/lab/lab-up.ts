// `lab up` of one cluster, in phases: prepare (model, teardown of a lab of the same name,
// slot, plan; nothing made), build (network, cgroups, the control plane's config dir,
// credentials), run (API server stand-in, control plane, agents, pod sandboxes, pods), then
// ready or failed. labUp (lab.ts) runs them in order for a lab; a two-cluster lab
// (lab-multicluster.ts) runs each phase for both clusters before the next, so that each
// control plane finds the other's config dir and the router joins networks that exist.
//
// Order within the phases: model (fails before anything is touched) → tear down any lab of
// the same name → state file with the whole plan → network (bridge, nodes) → cgroups →
// control plane config dir → with --kubernetes, the API server stand-in loaded from it →
// control plane (ready) → agents (ready) → pod sandboxes (netns, veth, address, then the
// chained CNI plugin's ADD, as a runtime does) → pods → pods listening. Pods' namespaces are
// made only once every agent is ready, so no pod exists before its redirect does, and only
// the plugin can have enrolled a new one. Each agent runs under a supervisor that restarts
// it as its DaemonSet would (lab-agents.ts).
import { mkdir, rm, stat } from 'node:fs/promises';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { cgroup2Mount, labCgroupRoot, makeCgroup } from './lab-cgroups.js';
import { spawnAgent, track, waitAgentReady } from './lab-agents.js';
import { APISERVER_ENTRY, apiserverArgv, controlArgv, DEFAULT_CLI } from './lab-commands.js';
import { writeConfigDir } from './lab-config-dir.js';
import { labCaDir, labNodeCaFile, writeLabCredentials } from './lab-credentials.js';
import { createGatewayLink } from './lab-gateway.js';
import { loadLabModel, type LabModel } from './lab-model.js';
import { createBridge, createNode, createPod, deleteLink, ensureBpffs, listLinks, listNetns, writePodEtc } from './lab-network.js';
import { BPFFS, hostsFile, planLab, slotLinkPattern } from './lab-plan.js';
import { isAlive, logTail, stopProcesses, waitFor, type DetachedSpec } from './lab-processes.js';
import { waitPodListening, waitReady } from './lab-readiness.js';
import { addPodThroughCni } from './lab-cni.js';
import { claimSlot, labStateDir, releaseSlot, writeLabState, type LabClusterState, type LabState } from './lab-state.js';
import { teardownLab } from './lab-teardown.js';

const log = logger('lab');

export interface LabUpOptions {
  /** directory of YAML files; pods run with it as cwd */
  dir: string;
  /** default: $NODEMESH_LAB, else `lab` */
  name?: string;
  /** start one agent per node (default true); false: network and pods only */
  agents?: boolean;
  /** start the control plane (default: same as agents) */
  control?: boolean;
  /**
   * run the control plane with `--source kubernetes` against an API server stand-in the lab
   * runs and loads with its objects (pods with their IPs, Services, the EndpointSlices they
   * imply, the rest of the YAML), instead of the file source over the config dir
   */
  kubernetes?: boolean;
  /** the nodemesh CLI entry the control plane and agents run from (default <repo>/bin/nodemesh.js) */
  cli?: string;
  /** extra environment for the control plane and the agents */
  env?: Record<string, string>;
  timeouts?: { controlMs?: number; agentsMs?: number; podsMs?: number };
  /** told each step as it starts, for a person watching (`nodemesh lab up` on a terminal) */
  progress?: (step: string) => void;
}

/** What `lab up` knows before it makes anything: the model and the whole plan (not yet written). */
export interface PreparedLab {
  state: LabState;
  model: LabModel;
}

/** Model (fails before anything is touched) → teardown of a lab of the same name → slot → plan. */
export async function prepareLab(name: string, opts: LabUpOptions, cluster?: LabClusterState): Promise<PreparedLab> {
  const agents = opts.agents ?? true;
  const control = opts.control ?? agents;
  const model = await loadLabModel(opts.dir);

  // a lab of the same name (running, or left by a crash) goes first
  const old = await teardownLab({ name });
  if (old.stateDir || old.netns.length || old.processes) log.info({ lab: name }, 'removed the previous lab of the same name');

  const mount = await cgroup2Mount({ mountIfMissing: true });
  const cgroupRoot = labCgroupRoot(mount!, name);
  // the state dir exists before the slot is claimed: a claim whose lab has no state dir is stale
  await mkdir(labStateDir(name), { recursive: true });
  const slot = await claimSlot(name);
  if (opts.kubernetes && !control) throw new NodemeshError('NM_ERR_LAB', 'lab up --kubernetes: the API server is for the control plane, which this lab would not start');
  if (opts.kubernetes && !(await pathExists(APISERVER_ENTRY))) {
    throw new NodemeshError('NM_ERR_LAB', `lab up --kubernetes: ${APISERVER_ENTRY} (the API server stand-in, built from test/helpers/) is not in this tree: use a development build (npx tsc -p .)`);
  }
  const state = planLab({ name, slot, cgroupRoot, model, agents, control, kubernetes: opts.kubernetes ?? false, ...(cluster ? { cluster } : {}) });
  await refuseTakenNames(state);
  return { state, model };
}

/** Network, cgroups, the control plane's config dir and the credentials: nothing runs yet. */
export async function buildLab(state: LabState, model: LabModel, opts: LabUpOptions): Promise<void> {
  const step = opts.progress ?? (() => {});
  step(`nodes: ${state.nodes.map((n) => n.name).join(', ')} (network namespaces, bridge ${state.bridge?.ip ?? '-'})`);
  await buildNetwork(state);
  await buildCgroups(state);
  await writeConfigDir(state, model);
  if (state.control || state.agents) await writeLabCredentials(state);
}

/**
 * The processes: API server stand-in, control plane, agents, then the pods' sandboxes and
 * the pods. `hosts`: the Services a pod's /etc/hosts names (default: the lab's own).
 */
export async function runLab(state: LabState, model: LabModel, opts: LabUpOptions, hosts: LabModel = model): Promise<void> {
  const step = opts.progress ?? (() => {});
  const { agents, control } = state;
  const env = { ...process.env, ...opts.env };
  const cli = opts.cli ?? DEFAULT_CLI;
  if (state.apiserver) step('Kubernetes API server (stand-in), loaded with the lab\'s objects');
  if (state.apiserver) await startApiServer(state, env, opts.timeouts?.controlMs ?? 30_000);
  if (control) step(state.apiserver ? 'control plane (--source kubernetes)' : 'control plane');
  if (control) await startControl(state, cli, env, opts.timeouts?.controlMs ?? 30_000);
  if (agents) step(`agents on ${state.nodes.length} node(s)`);
  if (agents) await startAgents(state, cli, env, opts.timeouts?.agentsMs ?? 60_000);
  // the runtime's sandbox step: the pod's network, then the chained CNI plugin, before any
  // container runs (without a control plane the agents cannot tell a meshed pod from
  // another: no plugin then; nor with stand-in agents of a test's own `cli`, which serve no
  // CNI socket)
  step(`pods: ${state.pods.length}`);
  await createSandboxes(state, hosts, agents && control && cli === DEFAULT_CLI, opts.timeouts?.podsMs ?? 30_000);
  await startPods(state, opts.timeouts?.podsMs ?? 30_000);
}

export async function markReady(state: LabState): Promise<void> {
  state.status = 'ready';
  await writeLabState(state);
  log.info({ lab: state.name }, 'lab ready');
}

/** A failed `lab up`: its processes stopped, its state says why; the error to throw. */
export async function failLab(state: LabState, err: unknown): Promise<NodemeshError> {
  const message = (err as Error).message;
  state.status = 'failed';
  state.error = message;
  // nothing of a failed lab keeps running in the background; its network and logs stay
  await stopProcesses(state.processes.map((p) => p.pid), 3_000);
  await writeLabState(state).catch(() => undefined);
  log.error({ lab: state.name, err: message }, 'lab up failed');
  return new NodemeshError('NM_ERR_LAB', `lab ${state.name}: ${message}\n  (processes stopped; network and logs under ${state.stateDir} kept for inspection: remove them with \`nodemesh lab down --name ${state.cluster?.parent ?? state.name}\`)`, { cause: err });
}

/**
 * After the teardown of any lab of this name, a netns, pin dir or /etc/netns dir of ours
 * that exists is another lab's: lab `a` with node `b-x` and lab `a-b` with node `x` would
 * share `nm-a-b-x`. Refuse rather than take it over.
 */
async function refuseTakenNames(state: LabState): Promise<void> {
  const netns = new Set(await listNetns());
  const taken = [
    ...[...state.nodes.map((n) => n.netns), ...state.pods.map((p) => p.netns)].filter((n) => netns.has(n)).map((n) => `netns ${n}`),
    ...(await Promise.all([...state.nodes.map((n) => n.pinDir), ...state.pods.map((p) => p.etcDir)].map(async (d) => ((await pathExists(d)) ? d : '')))).filter(Boolean),
  ];
  if (taken.length > 0) {
    await releaseSlot(state.name);
    await rm(state.stateDir, { recursive: true, force: true });
    throw new NodemeshError('NM_ERR_LAB', `lab ${state.name}: ${taken.join(', ')} already exist and belong to another lab (lab names joined with node and pod names collide): choose another --name`);
  }
}

async function pathExists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

async function buildNetwork(state: LabState): Promise<void> {
  // the slot is ours alone now: interfaces named after it are leftovers of a lab whose
  // claim is gone (a removed /run/nodemesh), and would make `ip link add` fail
  const pattern = slotLinkPattern(state.slot!);
  for (const l of await listLinks()) if (pattern.test(l)) await deleteLink(l);
  await createBridge(state.bridge!);
  for (const node of state.nodes) await createNode(node, state.nodes, state.bridge!);
}

/** What the runtime does for each pod: its network (the pod network's plugin), then nodemesh-cni's ADD. */
async function createSandboxes(state: LabState, model: LabModel, cni: boolean, timeoutMs: number): Promise<void> {
  const byName = new Map(state.nodes.map((n) => [n.name, n]));
  await inBatches(state.pods, 8, async (pod) => {
    await createPod(pod, byName.get(pod.node)!);
    const gateway = state.cluster?.gateways.find((g) => g.namespace === pod.namespace && g.pod === pod.name);
    if (gateway) await createGatewayLink(state, gateway, pod);
    await writePodEtc(pod, hostsFile(state, pod, model));
    if (cni) await addPodThroughCni(state, pod, timeoutMs);
  });
}

async function buildCgroups(state: LabState): Promise<void> {
  if (state.apiserver) await makeCgroup(state.apiserver.cgroup);
  if (state.controlAddress) await makeCgroup(state.controlAddress.cgroup);
  for (const n of state.nodes) {
    await makeCgroup(n.agentCgroup);
    await makeCgroup(n.podsCgroup);
  }
  for (const p of state.pods) await makeCgroup(p.cgroup);
}

/** The API server stand-in, ready once it wrote its kubeconfig (everything loaded). */
async function startApiServer(state: LabState, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  const a = state.apiserver!;
  const pid = await track(state, { argv: apiserverArgv(state.configDir, a.kubeconfig), cgroup: a.cgroup, netns: { via: 'none' }, cwd: process.cwd(), env, log: a.log }, 'apiserver', 'apiserver');
  let exited = false;
  const up = await waitFor(async () => (await pathExists(a.kubeconfig)) || (exited = !(await isAlive(pid))), timeoutMs, 50);
  if (!up || exited) throw new NodemeshError('NM_ERR_LAB', `the API server stand-in ${exited ? 'exited' : `wrote no kubeconfig within ${timeoutMs / 1000} s`} (log ${a.log}):\n${await logTail(a.log)}`);
  log.info({ lab: state.name, pid, kubeconfig: a.kubeconfig }, 'API server stand-in ready');
}

async function startControl(state: LabState, cli: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  const c = state.controlAddress!;
  const argv = controlArgv(cli, { configDir: state.configDir, ...(state.apiserver ? { kubeconfig: state.apiserver.kubeconfig } : {}), grpc: c.grpc, admin: c.admin, caDir: labCaDir(state.stateDir), nodeCa: labNodeCaFile(state.stateDir), ...(state.cluster ? { cluster: state.cluster } : {}) });
  const pid = await track(state, { argv, cgroup: c.cgroup, netns: { via: 'none' }, cwd: process.cwd(), env, log: c.log }, 'control', 'control');
  await waitReady({ what: 'control plane', hostport: c.admin, pid, log: c.log }, timeoutMs);
  log.info({ lab: state.name, grpc: c.grpc, pid }, 'control plane ready');
}

async function startAgents(state: LabState, cli: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  await ensureBpffs(BPFFS);
  const started = [];
  for (const n of state.nodes) started.push({ n, pid: await spawnAgent(state, n, cli, env) });
  const results = await Promise.allSettled(started.map(({ n, pid }) => waitAgentReady(n, pid, timeoutMs)));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (failed.length > 0) throw new NodemeshError('NM_ERR_LAB', failed.join('\n'));
  log.info({ lab: state.name, nodes: state.nodes.map((n) => n.name) }, 'agents ready');
}

/** What every pod process gets besides its container env (the host's PATH, no more). */
function podBaseEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/root', LANG: process.env.LANG ?? 'C.UTF-8' };
}

async function startPods(state: LabState, timeoutMs: number): Promise<void> {
  const pids = new Map<LabState['pods'][number], Map<string, number>>();
  for (const pod of state.pods) {
    const m = new Map<string, number>();
    for (const c of pod.containers) {
      const spec: DetachedSpec = {
        argv: c.argv,
        cgroup: pod.cgroup,
        netns: { via: 'ip-netns-exec', netns: pod.netns },
        cwd: state.dir,
        env: { ...podBaseEnv(), ...c.env },
        log: c.log,
      };
      m.set(c.name, await track(state, spec, 'pod', `${pod.namespace}/${pod.name}/${c.name}`));
    }
    pids.set(pod, m);
  }
  const results = await Promise.allSettled(state.pods.map((pod) => waitPodListening(pod, pids.get(pod)!, timeoutMs)));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (failed.length > 0) throw new NodemeshError('NM_ERR_LAB', failed.join('\n'));
}

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}
