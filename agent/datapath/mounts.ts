// Where the datapath lives in the filesystem: cgroup v2 (the hooks' attach points) and
// bpffs (the pins), both found in /proc/mounts and mounted when missing. No addon here.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';

const log = logger('agent/datapath');

export const BPFFS = '/sys/fs/bpf';
const BPFFS_LOCK = '/run/nodemesh-bpffs.lock';

export interface Mount {
  source: string;
  mountPoint: string;
  type: string;
}

export function mounts(): Mount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' '))
    .map(([source, mountPoint, type]) => ({ source: source!, mountPoint: unescape(mountPoint!), type: type! }));
}

/** The innermost mount containing `p` (last one wins for stacked mounts). */
export function mountOf(p: string, all = mounts()): Mount | undefined {
  let best: Mount | undefined;
  for (const m of all) {
    const inside = p === m.mountPoint || p.startsWith(m.mountPoint.endsWith('/') ? m.mountPoint : m.mountPoint + '/');
    if (inside && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/**
 * Where cgroup v2 is mounted (first cgroup2 entry of /proc/mounts). When there is none,
 * mounts one: at /sys/fs/cgroup/unified if that directory exists (hybrid layout), else
 * at /run/nodemesh/cgroup2.
 */
export function cgroup2Mount(): string {
  const found = mounts().find((m) => m.type === 'cgroup2');
  if (found) return found.mountPoint;
  const dir = fs.existsSync('/sys/fs/cgroup/unified') ? '/sys/fs/cgroup/unified' : '/run/nodemesh/cgroup2';
  try {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'cgroup2', 'none', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new NodemeshError('NM_ERR_CGROUP', `cgroup v2 is not mounted and mounting it at ${dir} failed (needs root): ${stderrOf(err)}`, {
      cause: err,
    });
  }
  log.info({ dir }, 'mounted cgroup v2');
  return dir;
}

/** This process's cgroup v2 directory (the `0::` line of /proc/self/cgroup). */
export function ownCgroup(): string {
  const line = fs
    .readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  if (!line) throw new NodemeshError('NM_ERR_CGROUP', 'no cgroup v2 entry ("0::") in /proc/self/cgroup; is cgroup v2 enabled?');
  return path.join(cgroup2Mount(), line.slice(3).replace(/ \(deleted\)$/, ''));
}

export function checkCgroup(role: string, dir: string): string {
  const abs = path.resolve(dir);
  const m = mountOf(abs);
  if (!m || m.type !== 'cgroup2') {
    const v2 = mounts().find((x) => x.type === 'cgroup2');
    throw new NodemeshError(
      'NM_ERR_CGROUP',
      `${role} cgroup ${abs} is not on cgroup v2 (${m ? `it is on ${m.type} at ${m.mountPoint}` : 'no mount'}); ` +
        (v2 ? `cgroup v2 is mounted at ${v2.mountPoint}` : 'cgroup v2 is not mounted: mount -t cgroup2 none /sys/fs/cgroup/unified'),
    );
  }
  if (!fs.existsSync(path.join(abs, 'cgroup.procs')))
    throw new NodemeshError(
      'NM_ERR_CGROUP',
      `${role} cgroup ${abs} does not exist (cgroup v2 is mounted at ${m.mountPoint}); create it with mkdir`,
    );
  return abs;
}

/** The cgroup id bpf links report: the inode number of the cgroup v2 directory. */
export const cgroupId = (dir: string) => fs.statSync(dir, { bigint: true }).ino;

/** Mounts bpffs at /sys/fs/bpf when pinDir needs it and nothing is mounted there. */
export function ensureBpffs(pinDir: string): void {
  const m = mountOf(pinDir);
  if (m?.type === 'bpf') return;
  if (pinDir === BPFFS || pinDir.startsWith(BPFFS + '/')) {
    try {
      // check-and-mount under a lock so two agents starting together mount it once
      execFileSync('flock', [BPFFS_LOCK, 'sh', '-c', `grep -qs ' ${BPFFS} bpf ' /proc/mounts || mount -t bpf bpf ${BPFFS}`], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    } catch (err) {
      throw new NodemeshError('NM_ERR_BPF', `bpffs is not mounted at ${BPFFS} and mounting it failed (needs root): ${stderrOf(err)}`, {
        cause: err,
      });
    }
    log.info({ dir: BPFFS }, 'mounted bpffs');
    return;
  }
  throw new NodemeshError(
    'NM_ERR_BPF',
    `pin dir ${pinDir} is not on a bpf filesystem (${m ? `${m.type} at ${m.mountPoint}` : 'no mount'}); use one under ${BPFFS} or mount bpffs: mount -t bpf bpf DIR`,
  );
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: Buffer; message?: string };
  return (e.stderr?.toString().trim() || e.message) ?? String(err);
}
