// The lab's agents as a DaemonSet runs them: each node's agent runs under a supervisor
// (lab-supervisor.ts, the kubelet's part) that restarts it when it dies and starts a second
// one beside it for an upgrade. What tests and operators do to an agent:
//   - kill it (`labKillAgent`, SIGKILL by default): a crash; the supervisor restarts it;
//   - upgrade it (`labUpgradeAgent`): a new agent with the same command line takes over;
//   - stop it (`labStopAgent`): the DaemonSet pod is gone (a node drain): SIGTERM to the
//     supervisor and its agents, nothing restarts them, the node's datapath stays;
//   - start it again (`labStartAgent`) after a stop.
// `labAgentStarts` tells when each agent process started and ended (the supervisor's record).
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { agentArgv, PORTS, supervisedArgv } from './lab-commands.js';
import { labNodeCredentialDir, labTrustBundleFile } from './lab-credentials.js';
import { isAlive, signalGroup, spawnDetached, waitFor, type DetachedSpec } from './lab-processes.js';
import { listenerPids, probeReady, waitReady } from './lab-readiness.js';
import { readLabState, writeLabState, type LabNodeState, type LabProcessState, type LabState } from './lab-state.js';

export interface AgentEvent {
  event: 'start' | 'exit';
  pid: number;
  /** ms since the epoch */
  at: number;
  /** start: why */
  reason?: 'initial' | 'restart' | 'upgrade';
  /** exit */
  code?: number | null;
  signal?: string | null;
}

const startsFile = (n: LabNodeState) => path.join(n.agentStateDir, 'starts.jsonl');

/** Starts a detached process recorded in the lab's state (written before it can outlive a crash of ours). */
export async function track(state: LabState, spec: DetachedSpec, role: LabProcessState['role'], name: string): Promise<number> {
  const pid = await spawnDetached(spec);
  state.processes.push({ role, name, pid, argv: spec.argv, log: spec.log, startedAt: new Date().toISOString() });
  await writeLabState(state);
  return pid;
}

/**
 * The allocator the DaemonSet preloads into the agent (deploy/kubernetes/agent.yaml;
 * ARCHITECTURE.md, "Agent memory"): Debian's libjemalloc2, named as the dynamic loader finds
 * it on any architecture.
 */
export const JEMALLOC = 'libjemalloc.so.2';

/**
 * jemalloc's settings for the agent (MALLOC_CONF, read once at its start): one arena (the
 * proxy allocates on its one event-loop thread; one arena per thread that allocates, V8's
 * and libuv's, would each keep its own partly used slabs) and thread caches only for
 * allocations up to 1 KiB. Measured with the bench's pods scenario (0 and 100 pods): 70.0–70.7
 * and 74.2–74.4 MB RSS, as with glibc's malloc (68.7–68.9, 74.0–74.2), against 73.7 and 77.5
 * MB with jemalloc's defaults (4 arenas per core, caches up to 32 KiB). And a free extent may
 * serve a request down to 1/65,536 of its size (the default, 1/64, made every socket read and
 * TLS record buffer fault in fresh pages once V8 had freed the last ones in a burst: bulk
 * through the L4 path at less than half its speed).
 */
export const JEMALLOC_CONF = 'narenas:1,tcache_max:1024,lg_extent_max_active_fit:16';

/** Whether this host has it where the dynamic loader looks (scripts/bootstrap.sh installs it). */
export function hostHasJemalloc(): boolean {
  return ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'].some((d) =>
    existsSync(path.join(d, JEMALLOC)),
  );
}

/**
 * What a lab agent's environment holds unless the lab's says otherwise: one proxy process
 * (above), and the DaemonSet's allocator: jemalloc preloaded, and glibc's malloc arenas capped
 * for where it is not (deploy/kubernetes/agent.yaml; ARCHITECTURE.md, "Agent memory"). A host
 * without jemalloc runs its agents on glibc's malloc (the lab test of the workers fails in CI
 * then); preloading a library that is not there would only print ld.so's error per process.
 */
export const AGENT_ENV: Record<string, string> = {
  NODEMESH_WORKERS: '1',
  MALLOC_ARENA_MAX: '2',
  ...(hostHasJemalloc() ? { LD_PRELOAD: JEMALLOC, MALLOC_CONF: JEMALLOC_CONF } : {}),
};

/** The supervised agent of node `n`, as `lab up` starts it. */
export async function spawnAgent(state: LabState, n: LabNodeState, cli: string, env: NodeJS.ProcessEnv): Promise<number> {
  await mkdir(n.agentStateDir, { recursive: true, mode: 0o700 });
  const agent = agentArgv(cli, {
    node: n.name,
    // without a control plane of the lab's own, agents still dial where it would be
    control: state.controlAddress?.grpc ?? `${state.bridge!.ip}:${PORTS.grpc}`,
    podsCgroup: n.podsCgroup,
    pinDir: n.pinDir,
    proxyIp: n.ip,
    admin: n.agentAdmin,
    netnsDir: n.netnsDir,
    rootCert: labTrustBundleFile(state.stateDir),
    nodeCredential: labNodeCredentialDir(state.stateDir, n.name),
    stateDir: n.agentStateDir,
    adminTrustedNetworks: `${state.bridge!.ip}/32`,
  });
  // one proxy process per agent unless the lab's env says otherwise: the lab's agents share
  // this machine's cores, so each defaulting to all of them would only oversubscribe it
  const spec: DetachedSpec = { argv: supervisedArgv(startsFile(n), agent), cgroup: n.agentCgroup, netns: { via: 'nsenter', netns: n.netns }, cwd: process.cwd(), env: { ...AGENT_ENV, ...env }, log: n.agentLog };
  return track(state, spec, 'agent', n.name);
}

/** Waits for node `n`'s agent to answer ready; fails at once (with its log) when an agent process exits first. */
export async function waitAgentReady(n: LabNodeState, supervisor: number, timeoutMs: number, since = 0): Promise<void> {
  await waitReady(
    {
      what: `agent of node ${n.name}`,
      hostport: n.agentAdmin,
      pid: supervisor,
      log: n.agentLog,
      exited: async () => (await readStarts(n)).some((e) => e.event === 'exit' && e.at >= since),
    },
    timeoutMs,
  );
}

async function readStarts(n: LabNodeState): Promise<AgentEvent[]> {
  const text = await readFile(startsFile(n), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AgentEvent);
}

async function labNode(name: string, node: string): Promise<{ state: LabState; n: LabNodeState }> {
  const state = await readLabState(name);
  if (!state) throw new NodemeshError('NM_ERR_LAB', `there is no lab named ${name}`);
  const n = state.nodes.find((x) => x.name === node);
  if (!n) throw new NodemeshError('NM_ERR_LAB', `lab ${name} has no node ${node} (nodes: ${state.nodes.map((x) => x.name).join(', ')})`);
  return { state, n };
}

/** Every start and exit of node `node`'s agent processes, oldest first. */
export async function labAgentStarts(name: string, node: string): Promise<AgentEvent[]> {
  return readStarts((await labNode(name, node)).n);
}

/** The agent process of `node` that started last and has not exited. */
export async function labAgentPid(name: string, node: string): Promise<number | undefined> {
  const events = await labAgentStarts(name, node);
  const exited = new Set(events.filter((e) => e.event === 'exit').map((e) => e.pid));
  return events.filter((e) => e.event === 'start' && !exited.has(e.pid)).at(-1)?.pid;
}

/** The supervisor of `node`'s agent (the process `lab up` or `labStartAgent` started last). */
function supervisorOf(state: LabState, node: string): LabProcessState | undefined {
  return state.processes.filter((p) => p.role === 'agent' && p.name === node).at(-1);
}

/**
 * Signals `node`'s current agent process alone (SIGKILL: a crash), as if it died in its pod:
 * its supervisor restarts it. Resolves to the killed pid once it is gone.
 */
export async function labKillAgent(name: string, node: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<number> {
  const pid = await labAgentPid(name, node);
  if (pid === undefined) throw new NodemeshError('NM_ERR_LAB', `lab ${name}: no agent runs on node ${node}`);
  process.kill(pid, signal);
  await waitFor(async () => !(await isAlive(pid)), 10_000, 20);
  return pid;
}

/**
 * An upgrade of `node`'s agent: a new agent process with the same command line starts while
 * the old one runs, takes its listeners over, and the old one drains and exits. Resolves to
 * the new pid once it answers ready.
 */
export async function labUpgradeAgent(name: string, node: string, timeoutMs = 60_000): Promise<{ oldPid: number | undefined; newPid: number }> {
  const { state, n } = await labNode(name, node);
  const supervisor = supervisorOf(state, node);
  if (!supervisor || !(await isAlive(supervisor.pid))) throw new NodemeshError('NM_ERR_LAB', `lab ${name}: the agent of node ${node} is not running (start it: labStartAgent)`);
  const oldPid = await labAgentPid(name, node);
  const since = Date.now();
  process.kill(supervisor.pid, 'SIGUSR2');
  let newPid: number | undefined;
  await waitFor(async () => {
    newPid = (await readStarts(n)).find((e) => e.event === 'start' && e.reason === 'upgrade' && e.at >= since)?.pid;
    return newPid !== undefined;
  }, 10_000, 20);
  if (newPid === undefined) throw new NodemeshError('NM_ERR_LAB', `lab ${name}: the supervisor of node ${node} started no new agent`);
  // the new agent binds the admin port once the old one let go of it: then it is the one answering
  const adminPort = Number(n.agentAdmin.slice(n.agentAdmin.lastIndexOf(':') + 1));
  const taken = await waitFor(async () => (await listenerPids(n.netns, adminPort)).includes(newPid!) && (await probeReady(n.agentAdmin)).ok, timeoutMs, 50);
  if (!taken) throw new NodemeshError('NM_ERR_LAB', `lab ${name}: the new agent of node ${node} (pid ${newPid}) did not take over within ${timeoutMs} ms; see ${n.agentLog}`);
  return { oldPid, newPid };
}

/**
 * The DaemonSet pod of `node` is gone (a node drain, an uninstall before its cleanup):
 * SIGTERM to the supervisor and its agents; nothing restarts them. Resolves once they exited.
 */
export async function labStopAgent(name: string, node: string, timeoutMs = 30_000): Promise<void> {
  const { state } = await labNode(name, node);
  const supervisor = supervisorOf(state, node);
  if (!supervisor || !(await isAlive(supervisor.pid))) return;
  const agents = (await labAgentStarts(name, node)).filter((e) => e.event === 'start').map((e) => e.pid);
  signalGroup(supervisor.pid, 'SIGTERM');
  const gone = async () => !(await isAlive(supervisor.pid)) && (await Promise.all(agents.map(isAlive))).every((a) => !a);
  if (!(await waitFor(gone, timeoutMs, 50))) throw new NodemeshError('NM_ERR_LAB', `lab ${name}: the agent of node ${node} did not exit within ${timeoutMs} ms of SIGTERM`);
}

/** Starts `node`'s agent again (after labStopAgent) with the command line it had; resolves once it is ready. */
export async function labStartAgent(name: string, node: string, opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<number> {
  const { state, n } = await labNode(name, node);
  const before = supervisorOf(state, node);
  if (!before) throw new NodemeshError('NM_ERR_LAB', `lab ${name} never ran an agent on node ${node}`);
  if (await isAlive(before.pid)) throw new NodemeshError('NM_ERR_LAB', `lab ${name}: the agent of node ${node} runs already (pid ${before.pid})`);
  const since = Date.now();
  const spec: DetachedSpec = { argv: before.argv, cgroup: n.agentCgroup, netns: { via: 'nsenter', netns: n.netns }, cwd: process.cwd(), env: { ...AGENT_ENV, ...process.env, ...opts.env }, log: n.agentLog };
  const pid = await track(state, spec, 'agent', node);
  await waitAgentReady(n, pid, opts.timeoutMs ?? 60_000, since);
  return pid;
}
