// The lab: Kubernetes-shaped YAML → a running local cluster on this machine (network
// namespaces for nodes and pods, cgroup v2 directories, the control plane and one agent
// per node), and its removal. The public surface of deploy/lab/: the CLI imports this file
// only (the lab tests also reach the pure steps: model, plan, config dir, command lines).
//
// `lab up` runs the phases of lab-up.ts for one cluster; a directory of one directory per
// cluster is a two-cluster lab (lab-multicluster.ts).
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { LAB_CGROUP_DIR } from './lab-cgroups.js';
import { multiclusterUp } from './lab-multicluster.js';
import { enterArgv, isAlive, runInherit } from './lab-processes.js';
import { labStateDir, listLabs, readLabState, validateLabName, writeLabState, type LabProcessState, type LabState } from './lab-state.js';
import { teardownLab, type LabDownOptions, type LabDownReport } from './lab-teardown.js';
import { buildLab, failLab, markReady, prepareLab, runLab, type LabUpOptions } from './lab-up.js';

export type { LabState, LabNodeState, LabPodState, LabServiceState, LabProcessState } from './lab-state.js';
export type { LabDownReport } from './lab-teardown.js';
export { LABS_DIR, labStateDir, labStateFile, listLabs } from './lab-state.js';
export { loadLabModel } from './lab-model.js';
export { labClusters } from './lab-multicluster.js';
export { controlArgv, agentArgv, PORTS as LAB_PORTS } from './lab-commands.js';
export { labAnnotate, parseAnnotations, type AnnotationChange, type LabAnnotateResult } from './lab-annotate.js';
export { labAgentPid, labAgentStarts, labKillAgent, labStartAgent, labStopAgent, labUpgradeAgent, type AgentEvent } from './lab-agents.js';

const log = logger('lab');

export const DEFAULT_LAB_NAME = 'lab';

export type { LabUpOptions } from './lab-up.js';

export function labName(name?: string): string {
  const n = name ?? process.env.NODEMESH_LAB ?? DEFAULT_LAB_NAME;
  validateLabName(n);
  return n;
}

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new NodemeshError('NM_ERR_LAB', `${what} needs root (network namespaces, veths, cgroups): run it as root`);
  }
}

export async function labUp(opts: LabUpOptions): Promise<LabState> {
  const name = labName(opts.name);
  requireRoot('lab up');
  if (await isMulticlusterDir(opts.dir)) return multiclusterUp({ ...opts, name });
  const { state, model } = await prepareLab(name, opts);
  await writeLabState(state); // every resource below is recorded before it exists
  log.info({ lab: name, slot: state.slot, nodes: state.nodes.length, pods: state.pods.length, bridge: state.bridge?.ip }, 'lab up');
  try {
    await buildLab(state, model, opts);
    await runLab(state, model, opts);
    await markReady(state);
    return state;
  } catch (err) {
    throw await failLab(state, err);
  }
}

/** A directory of YAML is one cluster; a directory of directories of YAML is one per cluster (lab-multicluster.ts). */
async function isMulticlusterDir(dir: string): Promise<boolean> {
  const entries = await readdir(path.resolve(dir), { withFileTypes: true }).catch(() => []);
  return !entries.some((e) => e.isFile() && /\.ya?ml$/.test(e.name)) && entries.some((e) => e.isDirectory() && !e.name.startsWith('.'));
}


/** Removes the lab: processes, cgroups, netns, links, pins, /etc/netns dirs, state. */
export async function labDown(opts: { name?: string; graceMs?: number } = {}): Promise<LabDownReport> {
  const name = labName(opts.name);
  requireRoot('lab down');
  const o: LabDownOptions = { name };
  if (opts.graceMs !== undefined) o.graceMs = opts.graceMs;
  return teardownLab(o);
}

/** The lab's state (node and pod IPs, netns names, cgroups, log paths); throws if there is no such lab. */
export async function labState(name?: string): Promise<LabState> {
  const n = labName(name);
  const state = await readLabState(n);
  if (!state) throw new NodemeshError('NM_ERR_LAB', `there is no lab named ${n}: start one with \`nodemesh lab up -f DIR --name ${n}\``);
  return state;
}

/** node name → node IP (where its agent's admin port answers, from the root netns). */
export async function labNodeAddresses(name?: string): Promise<Record<string, string>> {
  const s = await labState(name);
  return Object.fromEntries(s.nodes.map((n) => [n.name, n.ip]));
}

/** `namespace/name` → pod IP. */
export async function labPodAddresses(name?: string): Promise<Record<string, string>> {
  const s = await labState(name);
  return Object.fromEntries(s.pods.map((p) => [`${p.namespace}/${p.name}`, p.ip]));
}

export interface LabExecOptions {
  name?: string;
  /** `NAMESPACE/POD`, `POD` (namespace default) or `node/NODE` */
  target: string;
  argv: string[];
}

/**
 * The command line that runs `argv` inside a lab target, and its environment: for a pod,
 * in its cgroup and netns with its /etc/hosts and its first container's env (like
 * `kubectl exec`); for `node/NAME`, in the node's netns (where the agent's admin port is).
 */
export async function labExecCommand(opts: LabExecOptions): Promise<{ argv: string[]; env: NodeJS.ProcessEnv }> {
  if (opts.argv.length === 0) throw new NodemeshError('NM_ERR_LAB', 'lab exec: no command given (`nodemesh lab exec NS/POD -- CMD ARGS…`)');
  const state = await labState(opts.name);
  if (state.multicluster) {
    throw new NodemeshError('NM_ERR_LAB', `lab ${state.name} has two clusters, each a lab of its own: name one, e.g. \`nodemesh lab exec --name ${state.multicluster.clusters[0]!.lab} ${opts.target} -- …\` (clusters: ${state.multicluster.clusters.map((c) => c.lab).join(', ')})`);
  }
  if (opts.target.startsWith('node/')) {
    const node = state.nodes.find((n) => n.name === opts.target.slice('node/'.length));
    if (!node) throw new NodemeshError('NM_ERR_LAB', `lab ${state.name} has no ${opts.target} (nodes: ${state.nodes.map((n) => n.name).join(', ')})`);
    return { argv: enterArgv(undefined, { via: 'nsenter', netns: node.netns }, opts.argv), env: process.env };
  }
  const [ns, podName] = opts.target.includes('/') ? opts.target.split('/', 2) : ['default', opts.target];
  const pod = state.pods.find((p) => p.namespace === ns && p.name === podName);
  if (!pod) {
    throw new NodemeshError('NM_ERR_LAB', `lab ${state.name} has no pod ${ns}/${podName} (pods: ${state.pods.map((p) => `${p.namespace}/${p.name}`).join(', ') || 'none'}; nodes: node/NAME)`);
  }
  return { argv: enterArgv(pod.cgroup, { via: 'ip-netns-exec', netns: pod.netns }, opts.argv), env: { ...process.env, ...pod.containers[0]?.env } };
}

/** Runs a command inside a pod or node with the caller's stdio; resolves to its exit code. */
export async function labExec(opts: LabExecOptions): Promise<number> {
  requireRoot('lab exec');
  const { argv, env } = await labExecCommand(opts);
  return runInherit(argv, { env });
}

export interface LabStatusReport {
  name: string;
  status: LabState['status'];
  error?: string;
  slot: number | null;
  bridge: string | undefined;
  stateDir: string;
  /** `lab up --kubernetes`: the kubeconfig of the lab's API server */
  kubeconfig?: string;
  processes: (LabProcessState & { alive: boolean })[];
  nodes: { name: string; ip: string; netns: string; podCidr: string }[];
  pods: { namespace: string; name: string; node: string; ip: string; netns: string }[];
  services: { namespace: string; name: string; clusterIp: string; ports: string }[];
  /** a cluster of a two-cluster lab: its name, network and gateway addresses */
  cluster?: { name: string; network: string; parent: string; gateways: string[] };
  /** a two-cluster lab: its clusters (each a lab: `lab status --name LAB`) and the router between their networks */
  clusters?: { name: string; lab: string; network: string; status: string; bridge: string; gateways: string[] }[];
  wan?: string;
}

export async function labStatus(opts: { name?: string } = {}): Promise<LabStatusReport> {
  const s = await labState(opts.name);
  const report: LabStatusReport = {
    name: s.name,
    status: s.status,
    slot: s.slot,
    bridge: s.bridge ? `${s.bridge.name} ${s.bridge.ip}` : undefined,
    stateDir: s.stateDir,
    processes: await Promise.all(s.processes.map(async (p) => ({ ...p, alive: await isLabProcess(s.name, p.pid) }))),
    nodes: s.nodes.map((n) => ({ name: n.name, ip: n.ip, netns: n.netns, podCidr: n.podCidr })),
    pods: s.pods.map((p) => ({ namespace: p.namespace, name: p.name, node: p.node, ip: p.ip, netns: p.netns })),
    services: s.services.map((v) => ({ namespace: v.namespace, name: v.name, clusterIp: v.clusterIp, ports: v.ports.map((p) => `${p.port}→${p.targetPort}/${p.protocol}`).join(',') })),
  };
  if (s.error) report.error = s.error;
  if (s.apiserver) report.kubeconfig = s.apiserver.kubeconfig;
  if (s.cluster) report.cluster = { name: s.cluster.name, network: s.cluster.network, parent: s.cluster.parent, gateways: s.cluster.gateways.map((g) => `${g.namespace}/${g.service} ${g.address}:15008`) };
  if (s.multicluster) {
    report.wan = s.multicluster.wan.netns;
    report.clusters = await Promise.all(
      s.multicluster.clusters.map(async (c) => {
        const cs = await readLabState(c.lab).catch(() => undefined);
        return { name: c.name, lab: c.lab, network: cs?.cluster?.network ?? '-', status: cs?.status ?? 'missing', bridge: cs?.bridge?.cidr ?? '-', gateways: cs?.cluster?.gateways.map((g) => g.address) ?? [] };
      }),
    );
  }
  return report;
}

/** Alive and still in the lab's cgroup tree (a pid from the state file may have been reused). */
async function isLabProcess(lab: string, pid: number): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  const cg = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
  return cg.includes(`/${LAB_CGROUP_DIR}/${lab}/`);
}

/** `lab status` as text for the CLI. */
export function formatLabStatus(r: LabStatusReport): string {
  const proc = (role: string, name: string) => {
    const ps = r.processes.filter((p) => p.role === role && (p.name === name || p.name.startsWith(`${name}/`)));
    if (ps.length === 0) return '-';
    return ps.map((p) => `${p.pid}${p.alive ? '' : ' (dead)'}`).join(',');
  };
  const table = (rows: string[][]) => {
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    return rows.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
  };
  const out = [`lab ${r.name}: ${r.status}${r.error ? ` (${r.error.split('\n')[0]})` : ''}, slot ${r.slot ?? '-'}, bridge ${r.bridge ?? '-'}, state ${r.stateDir}`];
  if (r.clusters) {
    out.push(`two clusters, their networks joined only through their gateways by ${r.wan} (each cluster is a lab: nodemesh lab status|exec --name LAB)`, '');
    out.push(table([['CLUSTER', 'LAB', 'NETWORK', 'NODE SUBNET', 'GATEWAY', 'STATUS'], ...r.clusters.map((c) => [c.name, c.lab, c.network, c.bridge, c.gateways.join(',') || '-', c.status])]));
    return out.join('\n');
  }
  if (r.cluster) out.push(`cluster ${r.cluster.name} of lab ${r.cluster.parent}, network ${r.cluster.network}, east-west gateway ${r.cluster.gateways.join(', ')}`);
  out.push(`control plane: pid ${proc('control', 'control')}${r.kubeconfig ? `, --source kubernetes (API server stand-in: pid ${proc('apiserver', 'apiserver')}, KUBECONFIG=${r.kubeconfig})` : ''}`);
  out.push('', table([['NODE', 'IP', 'POD CIDR', 'NETNS', 'AGENT PID'], ...r.nodes.map((n) => [n.name, n.ip, n.podCidr, n.netns, proc('agent', n.name)])]));
  out.push('', table([['POD', 'IP', 'NODE', 'PIDS'], ...r.pods.map((p) => [`${p.namespace}/${p.name}`, p.ip, p.node, proc('pod', `${p.namespace}/${p.name}`)])]));
  out.push('', table([['SERVICE', 'CLUSTER-IP', 'PORTS'], ...r.services.map((s) => [`${s.namespace}/${s.name}`, s.clusterIp, s.ports])]));
  return out.join('\n');
}

/** Every lab with a state dir and its status. */
export async function labList(): Promise<{ name: string; status: LabState['status'] | 'unknown' }[]> {
  const out: { name: string; status: LabState['status'] | 'unknown' }[] = [];
  for (const name of await listLabs()) {
    const s = await readLabState(name).catch(() => undefined);
    out.push({ name, status: s?.status ?? 'unknown' });
  }
  return out;
}

/** For a pod's log paths etc.: `<state dir>/logs`. */
export function labLogDir(name?: string): string {
  return path.join(labStateDir(labName(name)), 'logs');
}
