// Finds the network namespaces of the pods on this node and the IPv4 addresses in each.
// The container runtime pins every pod's netns under /run/netns (containerd's cni-…
// files; the lab gives each node a directory of links to its pods' namespaces), so the
// agent matches a snapshot workload to its netns by pod IP: no CRI or CNI coupling needed
// for the thin path. Entries are cached by (path, inode): a netns is read once.
import { execFile } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { logger } from '../../common/log.js';

const run = promisify(execFile);
const log = logger('agent/pod-netns');

export interface PodNetns {
  path: string;
  inode: number;
  ipv4: string[];
}

export class PodNetnsScanner {
  private readonly cache = new Map<string, PodNetns>();

  constructor(private readonly dir: string) {}

  /**
   * Every netns in the directory with its IPv4 addresses (loopback excluded), except those
   * `skip` names by inode: reading a netns's addresses costs a process (nsenter + ip), and a
   * netns the CNI plugin already named (or is naming) needs no reading.
   */
  async scan(skip?: (inode: number) => boolean): Promise<PodNetns[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const seen = new Set<string>();
    const out: PodNetns[] = [];
    for (const name of names) {
      const p = path.join(this.dir, name);
      let inode: number;
      try {
        inode = (await stat(p)).ino; // follows links to the pinned nsfs file
      } catch {
        continue; // removed meanwhile, or a dangling link
      }
      seen.add(p);
      if (skip?.(inode)) continue;
      const cached = this.cache.get(p);
      if (cached && cached.inode === inode && cached.ipv4.length > 0) {
        out.push(cached);
        continue;
      }
      const ipv4 = await addressesIn(p);
      const entry = { path: p, inode, ipv4 };
      this.cache.set(p, entry);
      out.push(entry);
    }
    for (const p of this.cache.keys()) if (!seen.has(p)) this.cache.delete(p);
    return out;
  }
}

async function addressesIn(netnsPath: string): Promise<string[]> {
  try {
    const { stdout } = await run('nsenter', [`--net=${netnsPath}`, 'ip', '-j', '-4', 'addr', 'show'], { timeout: 5_000 });
    const links = JSON.parse(stdout) as Array<{ addr_info?: Array<{ local?: string; family?: string }> }>;
    const ips: string[] = [];
    for (const l of links) for (const a of l.addr_info ?? []) if (a.local && !a.local.startsWith('127.')) ips.push(a.local);
    return ips;
  } catch (err) {
    log.debug({ err, netns: netnsPath }, 'cannot read addresses of netns');
    return [];
  }
}
