// What a lab is made of, on disk: /run/nodemesh/labs/<lab>/state.json lists every resource
// the lab creates (netns, links, cgroups, pins, /etc/netns dirs, processes), and is written
// BEFORE the resources exist, so `lab down` can clean a lab whose `lab up` crashed half-way.
// Slots (which derive the bridge subnet and interface names) are claimed by creating
// /run/nodemesh/labs/.slots/<n> exclusively, so labs started in parallel never share one.
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';

export const LABS_DIR = '/run/nodemesh/labs';
const SLOTS_DIR = path.join(LABS_DIR, '.slots');
/** 172.31.240.0/24 … 172.31.255.0/24: one bridge subnet per slot. */
export const MAX_SLOTS = 16;
/** how long a `lab up` waits for another's slot claim (a failure bound, not a timing) */
const LOCK_WAIT_MS = 60_000;

export type LabStatusWord = 'creating' | 'ready' | 'failed' | 'deleting';
export type ProcessRole = 'control' | 'agent' | 'pod' | 'apiserver';

export interface LabProcessState {
  role: ProcessRole;
  /** `control`, `apiserver`, the node name for agents, `ns/pod/container` for pods */
  name: string;
  /** also the process group id: every lab process leads its own session */
  pid: number;
  argv: string[];
  log: string;
  startedAt: string;
}

export interface LabNodeState {
  name: string;
  index: number;
  ip: string;
  netns: string;
  /** veth end in the root netns (attached to the lab bridge); `eth0` inside the node */
  vethRoot: string;
  podCidr: string;
  /** the pod bridge inside the node netns and its address (the pods' default gateway) */
  podBridge: string;
  podBridgeIp: string;
  /** `<lab cgroup>/<node>/pods`: parent of the node's pods (the agent's connect hooks) */
  podsCgroup: string;
  /** `<lab cgroup>/<node>/agent`: the agent's own cgroup (its getsockopt hook) */
  agentCgroup: string;
  pinDir: string;
  /** directory of symlinks to this node's pods' netns (what the agent scans) */
  netnsDir: string;
  agentAdmin: string;
  agentLog: string;
  /**
   * the agent's --state-dir (handoff socket, last good state), and its supervisor's record
   * of agent starts and exits (`starts.jsonl`)
   */
  agentStateDir: string;
}

export interface LabContainerState {
  name: string;
  argv: string[];
  env: Record<string, string>;
  ports: number[];
  log: string;
}

export interface LabPodState {
  namespace: string;
  name: string;
  node: string;
  ip: string;
  netns: string;
  /** veth end in the node netns (attached to the pod bridge); `eth0` inside the pod */
  vethNode: string;
  cgroup: string;
  /** /etc/netns/<netns>: its hosts file is bind-mounted on /etc/hosts by `ip netns exec` */
  etcDir: string;
  containers: LabContainerState[];
}

export interface LabServiceState {
  namespace: string;
  name: string;
  clusterIp: string;
  ports: { name: string; port: number; targetPort: number | string; protocol: string }[];
}

export interface LabState {
  version: 1;
  name: string;
  status: LabStatusWord;
  slot: number | null;
  /** the user's YAML directory (pods run with it as cwd) */
  dir: string;
  createdAt: string;
  stateDir: string;
  /** the control plane's --config-dir */
  configDir: string;
  logDir: string;
  agents: boolean;
  control: boolean;
  /** `<cgroup2 mount>/nodemesh-lab/<lab>`; null until the cgroup2 mount is known */
  cgroupRoot: string | null;
  bridge: { name: string; ip: string; cidr: string } | null;
  controlAddress: { grpc: string; admin: string; log: string; cgroup: string } | null;
  /**
   * `lab up --kubernetes`: the lab's API server (the stand-in, lab-apiserver.ts) the control
   * plane watches; the kubeconfig it writes once loaded. Absent: the control plane reads
   * `configDir` (the file source).
   */
  apiserver?: { kubeconfig: string; log: string; cgroup: string };
  nodes: LabNodeState[];
  pods: LabPodState[];
  services: LabServiceState[];
  processes: LabProcessState[];
  /** the error that stopped `lab up`, when status is failed */
  error?: string;
  /** one cluster of a two-cluster lab (lab-multicluster.ts); absent in a single-cluster lab */
  cluster?: LabClusterState;
  /** a two-cluster lab's own record: its clusters (each a lab of its own) and the link joining their networks */
  multicluster?: LabMulticlusterState;
}

/** What makes a lab one cluster of several: its names, its peers, its CA and its gateway. */
export interface LabClusterState {
  /** the cluster name (`nodemesh control --cluster`), the name of its directory */
  name: string;
  /** `topology.istio.io/network` of the cluster (`--network`) */
  network: string;
  /** the two-cluster lab this cluster belongs to */
  parent: string;
  /** 0, 1: the cluster's pod CIDRs are 10.(244+index).<node>.0/24 */
  index: number;
  /** the other clusters, as this cluster's control plane watches them (`--remote-cluster NAME=DIR,network=NET`) */
  remotes: { name: string; network: string; configDir: string }[];
  /** the plug-in CA: this cluster's intermediate, its key and the shared root (`--ca-cert/--ca-key/--ca-chain`) */
  pluginCa: { cert: string; key: string; chain: string };
  /** the address of the link between the networks (the WAN router) on this cluster's node subnet */
  wanIp: string;
  /** the other clusters' gateway addresses and node subnets, routed through the WAN router */
  remoteGateways: string[];
  remoteSubnets: string[];
  gateways: LabGatewayState[];
}

/** An east-west gateway: its Service, its pod, and the LoadBalancer address the lab gives it. */
export interface LabGatewayState {
  namespace: string;
  service: string;
  /** the pod the gateway runs in (`nodemesh agent --gateway` in place of its container's command) */
  pod: string;
  node: string;
  /** status.loadBalancer.ingress[0].ip: on the pod's second interface `lb0`, on the cluster's node subnet */
  address: string;
  /** root-netns end of `lb0`, attached to the cluster's bridge */
  vethRoot: string;
  admin: string;
  log: string;
  stateDir: string;
}

export interface LabMulticlusterState {
  clusters: { name: string; lab: string }[];
  /** the router between the networks: one leg on each cluster's bridge, forwarding only TCP to the gateways' 15008 */
  wan: { netns: string; legs: { cluster: string; ifname: string; vethRoot: string; ip: string; bridge: string }[] };
  /** the shared root and the per-cluster intermediates */
  caDir: string;
}

export function labStateDir(name: string): string {
  return path.join(LABS_DIR, name);
}

export function labStateFile(name: string): string {
  return path.join(labStateDir(name), 'state.json');
}

/** Lab names become parts of netns, pin and cgroup names: keep them short and plain. */
export function validateLabName(name: string): void {
  if (!/^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$/.test(name)) {
    throw new NodemeshError(
      'NM_ERR_LAB',
      `lab name "${name}" is not valid: use 1-24 lowercase letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
}

export async function readLabState(name: string): Promise<LabState | undefined> {
  let text: string;
  try {
    text = await readFile(labStateFile(name), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as LabState;
  } catch (err) {
    throw new NodemeshError('NM_ERR_LAB', `lab state ${labStateFile(name)} is not valid JSON; run \`nodemesh lab down --name ${name}\` to sweep the lab by name`, { cause: err });
  }
}

/** Atomic replace (write then rename), so a crash never leaves half a state file. */
export async function writeLabState(state: LabState): Promise<void> {
  await mkdir(state.stateDir, { recursive: true });
  const file = labStateFile(state.name);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n');
  await rename(tmp, file);
}

/** Names of every lab with a state directory. */
export async function listLabs(): Promise<string[]> {
  try {
    const entries = await readdir(LABS_DIR, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Claims the lowest free slot for `name`. A claim whose lab has no state directory any
 * more is stale (`lab up` creates the state directory before claiming, `lab down` releases
 * the claim before removing it) and is taken over.
 */
export async function claimSlot(name: string): Promise<number> {
  await mkdir(SLOTS_DIR, { recursive: true });
  return withSlotsLock(() => claimSlotLocked(name));
}

async function claimSlotLocked(name: string): Promise<number> {
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    const file = path.join(SLOTS_DIR, String(slot));
    try {
      await writeFile(file, name, { flag: 'wx' });
      return slot;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = await readFile(file, 'utf8').catch(() => '');
    if (owner === name) return slot;
    if (owner && !(await exists(labStateFile(owner))) && !(await exists(labStateDir(owner)))) {
      await writeFile(file, name);
      return slot;
    }
  }
  const owners = await slotOwners();
  throw new NodemeshError(
    'NM_ERR_LAB',
    `no free lab slot (${MAX_SLOTS} in use by: ${[...owners.values()].join(', ')}): remove one with \`nodemesh lab down --name NAME\``,
  );
}

/** slot → lab name, from the claim files. */
export async function slotOwners(): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  let files: string[];
  try {
    files = await readdir(SLOTS_DIR);
  } catch {
    return out;
  }
  for (const f of files) {
    if (!/^\d+$/.test(f)) continue;
    const owner = await readFile(path.join(SLOTS_DIR, f), 'utf8').catch(() => '');
    if (owner) out.set(Number(f), owner);
  }
  return out;
}

export async function releaseSlot(name: string): Promise<void> {
  for (const [slot, owner] of await slotOwners()) {
    if (owner === name) await rm(path.join(SLOTS_DIR, String(slot)), { force: true });
  }
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Serialises slot claims between processes (ava runs test files in parallel): taking over
 * a stale claim is a read-then-replace that must not interleave with another claim. The lock
 * holds its holder's pid: a holder that died (kill -9 of a `lab up`) is seen at once, so a
 * waiter never times out behind a dead one; a live holder is waited for up to 60 s (a loaded
 * machine can stall a process for seconds), and a lock older than that is taken as stale.
 */
async function withSlotsLock<T>(fn: () => Promise<T>): Promise<T> {
  const lock = path.join(SLOTS_DIR, 'lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(await readFile(lock, 'utf8').catch(() => ''));
      const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
      if ((holder > 0 && !alive(holder)) || age > LOCK_WAIT_MS) await rm(lock, { force: true });
      else if (Date.now() > deadline) throw new NodemeshError('NM_ERR_LAB', `timed out waiting for the lab slot lock ${lock} held by pid ${holder || '?'}; remove it if no \`lab up\` is running`);
      await sleep(20 + Math.random() * 30);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}
