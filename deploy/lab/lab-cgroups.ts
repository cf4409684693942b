// cgroup v2 directories of the lab: <cgroup2 mount>/nodemesh-lab/<lab>/…
//   <node>/pods/<ns>-<pod>   one per pod (the agent attaches connect hooks to <node>/pods)
//   <node>/agent             the node's agent (its getsockopt hook)
//   control                  the control plane
// Every lab process lives in this tree, so the tree is also how `lab down` finds the
// processes of a lab whose state file is lost: read cgroup.procs, then cgroup.kill.
import { mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { run, waitFor } from './lab-processes.js';

const FALLBACK_MOUNT = '/run/nodemesh/cgroup2';
export const LAB_CGROUP_DIR = 'nodemesh-lab';

/** The cgroup2 mount point from /proc/mounts (mounting one only when there is none). */
export async function cgroup2Mount(opts: { mountIfMissing?: boolean } = {}): Promise<string | undefined> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  for (const line of mounts.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2' && dir) return dir.replace(/\\040/g, ' ');
  }
  if (!opts.mountIfMissing) return undefined;
  await mkdir(FALLBACK_MOUNT, { recursive: true });
  try {
    await run('mount', ['-t', 'cgroup2', 'none', FALLBACK_MOUNT]);
  } catch (err) {
    throw new NodemeshError('NM_ERR_CGROUP', `no cgroup v2 hierarchy is mounted and mounting one on ${FALLBACK_MOUNT} failed: ${(err as Error).message}`, { cause: err });
  }
  return FALLBACK_MOUNT;
}

export function labCgroupRoot(mount: string, lab: string): string {
  return path.join(mount, LAB_CGROUP_DIR, lab);
}

export async function makeCgroup(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new NodemeshError('NM_ERR_CGROUP', `cannot create cgroup ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** Every directory of the tree under (and including) `root`, deepest first. */
async function treeBottomUp(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) await walk(path.join(dir, e.name));
    out.push(dir);
  };
  await walk(root);
  return out;
}

/** Pids of every process in the tree. */
export async function cgroupTreePids(root: string): Promise<number[]> {
  const pids: number[] = [];
  for (const dir of await treeBottomUp(root)) {
    const text = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const l of text.split('\n')) if (l) pids.push(Number(l));
  }
  return pids;
}

/** SIGKILLs every process of the tree at once (cgroup.kill, Linux 5.14+; else one by one). */
export async function killCgroupTree(root: string): Promise<void> {
  try {
    await writeFile(path.join(root, 'cgroup.kill'), '1');
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !(await exists(root))) return;
  }
  for (const pid of await cgroupTreePids(root)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Waits until no process is left in the tree. */
export async function waitCgroupEmpty(root: string, timeoutMs: number): Promise<boolean> {
  return waitFor(async () => {
    const events = await readFile(path.join(root, 'cgroup.events'), 'utf8').catch(() => 'populated 0');
    return /populated 0/.test(events);
  }, timeoutMs, 50);
}

/** rmdir bottom-up; returns the directories that could not be removed. */
export async function removeCgroupTree(root: string): Promise<string[]> {
  const left: string[] = [];
  for (const dir of await treeBottomUp(root)) {
    try {
      await rmdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') left.push(`${dir} (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  return left;
}

async function exists(p: string): Promise<boolean> {
  return readdir(p).then(() => true, () => false);
}
