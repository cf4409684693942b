// How many proxy workers an agent runs when its operator did not say: the cores its cgroup
// may use, as Envoy's --concurrency defaults to the CPUs it may run on. A CPU limit on the
// agent's pod (cgroup v2 cpu.max, on its own cgroup or any parent) counts, rounded up; so
// does the CPU affinity (os.availableParallelism follows sched_getaffinity).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The CPUs a cgroup v2 `cpu.max` ("max 100000" or "<quota> <period>") allows, or undefined for no limit. */
export function cpuMaxCores(cpuMax: string): number | undefined {
  const [quota, period] = cpuMax.trim().split(/\s+/);
  if (!quota || quota === 'max') return undefined;
  const q = Number(quota);
  const p = Number(period ?? 100_000);
  if (!(q > 0) || !(p > 0)) return undefined;
  return Math.max(1, Math.ceil(q / p));
}

/** The smallest cpu.max limit on `cgroupDir` and its parents up to `mount`, or undefined. */
function cgroupCores(mount: string, cgroupDir: string): number | undefined {
  let least: number | undefined;
  for (let dir = cgroupDir; dir.startsWith(mount); dir = path.dirname(dir)) {
    try {
      const n = cpuMaxCores(fs.readFileSync(path.join(dir, 'cpu.max'), 'utf8'));
      if (n !== undefined) least = least === undefined ? n : Math.min(least, n);
    } catch {
      // no cpu controller here (or no such file at the root): no limit at this level
    }
    if (dir === mount) break;
  }
  return least;
}

/** The default worker count: the CPUs this process may run on, bounded by its cgroup's CPU limit. */
export function defaultWorkerCount(): number {
  const cpus = os.availableParallelism();
  let own: string | undefined;
  try {
    // cgroup v2: a single line "0::/path"
    own = /^0::(\/.*)$/m.exec(fs.readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  } catch {
    own = undefined;
  }
  const limit = own ? cgroupCores('/sys/fs/cgroup', path.join('/sys/fs/cgroup', own)) : undefined;
  return Math.max(1, Math.min(cpus, limit ?? cpus));
}
