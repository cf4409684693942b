// A CPU quota for a set of processes, for the workers scenario: on a machine whose few cores
// also run the load generator, the backends and the other node's agent, "N workers on N
// cores" cannot be shown with real cores, but N workers given N shares of CPU against one
// worker given one share can (the proxies are then the bottleneck, not the shared cores).
//
// It uses the cgroup v1 `cpu` controller's CFS quota (cpu.cfs_quota_us per cpu.cfs_period_us)
// in a group of its own under the v1 `cpu` hierarchy. Moving a process there leaves its
// cgroup v2 membership alone, so the agent keeps the eBPF hooks attached to its v2 cgroup.
// A cgroup-v2-only machine has no such hierarchy and `cpuQuotaGroup` returns undefined: the
// agents' own v2 cgroups carry the hooks and cannot be moved, and such a machine is the one
// with cores to measure on anyway. Every group is removed by `close()`, and one left by a
// crashed run is removed before the next one is made.
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const PERIOD_US = 100_000;

/** The v1 `cpu` hierarchy's mount point (from /proc/mounts), if there is one. */
export async function cpuV1Root(mounts?: string): Promise<string | undefined> {
  const text = mounts ?? (await readFile('/proc/mounts', 'utf8'));
  for (const line of text.split('\n')) {
    const [, dir, type, options] = line.split(' ');
    if (type === 'cgroup' && dir && options?.split(',').includes('cpu')) return dir;
  }
  return undefined;
}

export interface CpuQuotaGroup {
  readonly dir: string;
  /** moves the processes into the group (their later children are born in it) */
  add(pids: number[]): Promise<void>;
  /** `cpus` of CPU time per period (0.25 = a quarter of one CPU), or undefined for no limit */
  limit(cpus: number | undefined): Promise<void>;
  /** moves whatever is still in the group back to the hierarchy's root and removes it */
  close(): Promise<void>;
}

async function removeGroup(root: string, dir: string): Promise<void> {
  for (const sub of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (sub.isDirectory()) await removeGroup(root, path.join(dir, sub.name));
  }
  const pids = (await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
  for (const pid of pids) await writeFile(path.join(root, 'cgroup.procs'), pid).catch(() => undefined);
  await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw new Error(`cannot remove the CPU quota group ${dir}: ${err.message}`);
  });
}

/** A group named `name` under the v1 `cpu` hierarchy, made anew (a leftover is removed first). */
export async function cpuQuotaGroup(name: string): Promise<CpuQuotaGroup | undefined> {
  const root = await cpuV1Root();
  if (!root) return undefined;
  const dir = path.join(root, name);
  await removeGroup(root, dir);
  await mkdir(dir);
  await writeFile(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
  return {
    dir,
    async add(pids) {
      for (const pid of pids) await writeFile(path.join(dir, 'cgroup.procs'), String(pid));
    },
    async limit(cpus) {
      const quota = cpus === undefined ? -1 : Math.max(1000, Math.round(cpus * PERIOD_US));
      await writeFile(path.join(dir, 'cpu.cfs_quota_us'), String(quota));
    },
    close: () => removeGroup(root, dir),
  };
}
