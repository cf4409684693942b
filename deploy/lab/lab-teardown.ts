// `lab down`: removes everything a lab made, from its state file AND by sweeping what
// carries its name, so a lab whose `lab up` crashed (or whose state file is lost) is still
// removed. Order matters:
//   1. processes: SIGTERM every process group, wait (agents unpin on SIGTERM), SIGKILL,
//      then cgroup.kill the lab's tree and wait until it is empty;
//   2. cgroups, bottom-up (a cgroup with processes cannot be removed);
//   3. netns (pods, then nodes) and the root-netns links of the lab's slot;
//   4. bpffs pins, /etc/netns dirs, the slot claim, the state dir.
// Every step runs even when an earlier one failed; what could not be removed is reported.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { cgroup2Mount, cgroupTreePids, killCgroupTree, labCgroupRoot, removeCgroupTree, waitCgroupEmpty } from './lab-cgroups.js';
import { ETC_NETNS_DIR, deleteLink, deleteNetns, listLinks, listNetns, netnsPids } from './lab-network.js';
import { BPFFS, netnsPrefix, pinPrefix, slotLinkPattern } from './lab-plan.js';
import { stopProcesses } from './lab-processes.js';
import { labStateDir, listLabs, readLabState, releaseSlot, slotOwners, type LabState } from './lab-state.js';

const log = logger('lab');

export interface LabDownOptions {
  name: string;
  /** how long processes get to exit on SIGTERM before SIGKILL (default 5000) */
  graceMs?: number;
}

export interface LabDownReport {
  name: string;
  processes: number;
  netns: string[];
  links: string[];
  cgroups: boolean;
  pins: string[];
  etcNetns: string[];
  stateDir: boolean;
}

export async function teardownLab(opts: LabDownOptions): Promise<LabDownReport> {
  const { name } = opts;
  const problems: string[] = [];
  const step = async <T>(what: string, fn: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
      return fallback;
    }
  };
  let state: LabState | undefined;
  try {
    state = await readLabState(name);
  } catch (err) {
    log.warn({ lab: name, err: (err as Error).message }, 'state file unreadable; sweeping the lab by name');
  }
  // a two-cluster lab: its clusters first (each a lab of its own), found through the record
  // and through their states naming it (a record lost or written before they were)
  for (const child of await clustersOf(name, state)) {
    try {
      const r = await teardownLab({ ...opts, name: child });
      log.info({ lab: name, cluster: child, netns: r.netns.length }, 'cluster of the lab removed');
    } catch (err) {
      problems.push(`cluster lab ${child}: ${(err as Error).message}`);
    }
  }
  const mine = await ownedBy(name);
  const report: LabDownReport = { name, processes: 0, netns: [], links: [], cgroups: false, pins: [], etcNetns: [], stateDir: false };

  // what exists: from the state file, and from the names that carry the lab's prefix
  const netns = new Set([...(state?.pods.map((p) => p.netns) ?? []), ...(state?.nodes.map((n) => n.netns) ?? []), ...(state?.multicluster ? [state.multicluster.wan.netns] : [])]);
  for (const n of await step('ip netns list', listNetns, [])) if (mine(n, netnsPrefix(name))) netns.add(n);
  const mount = await step('cgroup2 mount', () => cgroup2Mount(), undefined);
  const cgroupRoot = state?.cgroupRoot ?? (mount ? labCgroupRoot(mount, name) : undefined);

  // 1. processes
  // found by where they are, not by the pids in the state file: those may have been reused
  // by unrelated processes since the lab's died. Every lab process joins the lab's cgroup
  // tree before it execs, and `lab exec` into a node leaves its processes in that netns.
  const pids = new Set<number>();
  if (cgroupRoot) for (const pid of await cgroupTreePids(cgroupRoot)) pids.add(pid);
  for (const n of netns) for (const pid of await netnsPids(n)) pids.add(pid);
  const alive = await stopProcesses(pids, opts.graceMs ?? 5_000);
  report.processes = alive.length;
  if (alive.length > 0) log.info({ lab: name, pids: alive }, 'lab processes stopped');
  if (cgroupRoot) {
    await step('cgroup.kill', () => killCgroupTree(cgroupRoot), undefined);
    if (!(await waitCgroupEmpty(cgroupRoot, 5_000))) problems.push(`processes are still in ${cgroupRoot} after SIGKILL`);
    // 2. cgroups
    const left = await removeCgroupTree(cgroupRoot);
    if (left.length) problems.push(`cgroups not removed: ${left.join(', ')}`);
    report.cgroups = left.length === 0;
  }

  // 3. netns (a veth dies with either of its namespaces) and the root-netns links
  const ordered = [...netns].sort((a, b) => b.length - a.length);
  for (const n of ordered) if (await step(`ip netns del ${n}`, () => deleteNetns(n), false)) report.netns.push(n);
  const slots = new Set<number>();
  if (state?.slot !== null && state?.slot !== undefined) slots.add(state.slot);
  for (const [slot, owner] of await slotOwners()) if (owner === name) slots.add(slot);
  const taken = new Map([...(await slotOwners())].filter(([, o]) => o !== name));
  const links = await step('ip link show', () => listLinks(), []);
  for (const slot of slots) {
    if (taken.has(slot)) continue; // claimed by another lab since (our claim was released)
    const pattern = slotLinkPattern(slot);
    for (const l of links) if (pattern.test(l) && (await step(`ip link del ${l}`, () => deleteLink(l), false))) report.links.push(l);
  }

  // 4. pins, /etc/netns, slot, state dir
  const pins = new Set(state?.nodes.map((n) => n.pinDir) ?? []);
  for (const e of await readdir(BPFFS).catch(() => [] as string[])) if (mine(e, pinPrefix(name))) pins.add(path.join(BPFFS, e));
  for (const p of pins) {
    if (await step(`rm ${p}`, () => removeIfExists(p), false)) report.pins.push(p);
  }
  const etc = new Set(state?.pods.map((p) => p.etcDir) ?? []);
  for (const e of await readdir(ETC_NETNS_DIR).catch(() => [] as string[])) if (mine(e, netnsPrefix(name))) etc.add(path.join(ETC_NETNS_DIR, e));
  for (const d of etc) if (await step(`rm ${d}`, () => removeIfExists(d), false)) report.etcNetns.push(d);
  await step('release slot', () => releaseSlot(name), undefined);
  report.stateDir = await step('rm state dir', () => removeIfExists(labStateDir(name)), false);

  if (problems.length > 0) {
    throw new NodemeshError('NM_ERR_LAB', `lab ${name} was not removed completely:\n  ${problems.join('\n  ')}\n  run \`nodemesh lab down --name ${name}\` again once the cause is fixed`);
  }
  if (report.processes || report.netns.length || report.links.length || report.pins.length || report.stateDir) {
    log.info({ lab: name, processes: report.processes, netns: report.netns.length, links: report.links.length, pins: report.pins.length }, 'lab removed');
  }
  return report;
}

/**
 * A name with the lab's prefix is the lab's unless it is another lab's: lab `a` must not
 * sweep `nm-a-b-…` while a lab named `a-b` exists.
 */
async function ownedBy(name: string): Promise<(entry: string, prefix: string) => boolean> {
  const longer = (await listLabs()).filter((o) => o !== name && o.startsWith(`${name}-`));
  for (const o of (await slotOwners()).values()) if (o !== name && o.startsWith(`${name}-`)) longer.push(o);
  return (entry, prefix) => {
    if (!entry.startsWith(prefix)) return false;
    const otherPrefix = prefix.slice(0, prefix.length - name.length - 1);
    return !longer.some((o) => entry.startsWith(`${otherPrefix}${o}-`));
  };
}

/** The labs that are clusters of the two-cluster lab `name`. */
async function clustersOf(name: string, state: LabState | undefined): Promise<string[]> {
  const out = new Set(state?.multicluster?.clusters.map((c) => c.lab) ?? []);
  for (const other of await listLabs()) {
    if (other === name || !other.startsWith(`${name}-`)) continue;
    const s = await readLabState(other).catch(() => undefined);
    if (s?.cluster?.parent === name) out.add(other);
  }
  return [...out];
}

async function removeIfExists(p: string): Promise<boolean> {
  try {
    await readdir(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  await rm(p, { recursive: true, force: true });
  return true;
}
