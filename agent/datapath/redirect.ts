// The redirect datapath (the cgroup programs of bpf/redirect.bpf.c) as the agent sees it:
// load build/bpf/redirect.bpf.o, pin its maps under a versioned directory, attach its
// programs to the pods' and the proxy's cgroups through pinned links, enrol network
// namespaces. A pod's connect() to anywhere goes to the proxy's outbound port; the proxy
// asks where it was meant to go with getsockopt(SO_ORIGINAL_DST).
//
// Restarts: maps and links are pinned, and an agent never unpins them when it stops
// (SIGTERM included): the redirect stays in place, so a stopped agent fails closed — a
// meshed pod's connects reach a port nobody listens on — and the next agent reuses the
// maps (enrolments and in-flight original destinations survive) and swaps the programs of
// the existing links atomically; connections never see a window without the datapath.
// Only `nodemesh agent cleanup` (an uninstall) detaches and unpins.
//
// Liveness: the agent's heartbeat in nm_liveness lets the programs tell a serving proxy
// from a dead one, for the pods whose namespace fails open (NETNS_FLAGS.failOpen).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { packagePath } from '../../common/paths.js';
import { logger } from '../../common/log.js';
import { AGENT_PORTS } from '../../common/ports.js';
import { nat, native, tryAll, type Native } from './addon.js';
import {
  CONFIG,
  LIVENESS,
  NETNS_FLAGS,
  ORIG_DST,
  TUPLE4,
  U32,
  U64,
  decodeLiveness,
  decodeOrig,
  decodeTuple,
  encodeConfig,
  encodeLiveness,
  encodeTuple,
  readU64,
  u32,
  u64,
  type DatapathConfig,
  type OriginalDestination,
  type ProxyTuple,
} from './codecs.js';
import { checkCgroup, cgroupId, ensureBpffs, mountOf } from './mounts.js';

export { cgroup2Mount, ownCgroup } from './mounts.js';
export type { DatapathConfig, OriginalDestination, ProxyTuple } from './codecs.js';

const log = logger('agent/datapath');

/**
 * Bumped whenever a map definition or a flag's meaning in bpf/nodemesh.h changes (v2:
 * nm_liveness and the FAIL_OPEN flags). An agent retires the pins of older versions once
 * its own are attached (retireOlderVersions).
 */
export const DATAPATH_PIN_VERSION = 'v2';
export const DEFAULT_PIN_DIR = `/sys/fs/bpf/nodemesh/${DATAPATH_PIN_VERSION}`;

// ---- the datapath ----------------------------------------------------------------

export interface DatapathOptions {
  /** Versioned pin directory on bpffs; default /sys/fs/bpf/nodemesh/v1. */
  pinDir?: string;
  /** cgroup v2 directory whose sockets are captured (parent of all pods; root in production). */
  podsCgroup: string;
  /** cgroup v2 directory of the proxy: only there is getsockopt(SO_ORIGINAL_DST) answered. */
  proxyCgroup: string;
  /** IPv4 address of the proxy's outbound listener. */
  proxyIp: string;
  /** Port of the proxy's outbound listener; default 15001 (AGENT_PORTS.outbound). */
  proxyPort?: number;
  /** SO_MARK of the proxy's own sockets, never redirected; default 0 (no mark check). */
  mark?: number;
  /** The eBPF object; default <package>/build/bpf/redirect.bpf.o. */
  objectPath?: string;
}

export interface AttachedLink {
  program: string;
  cgroup: string;
  linkId: number;
  progId: number;
  /** true when the link was pinned by an earlier agent and only its program replaced */
  reused: boolean;
}

type Where = 'pods' | 'proxy';
// Attach order: the proxy side and the bookkeeping before the connect hooks that start
// redirecting; close() detaches in reverse, so redirecting stops first.
const PROGRAMS: ReadonlyArray<{ name: string; where: Where }> = [
  { name: 'nm_getsockopt', where: 'proxy' },
  { name: 'nm_sockops', where: 'pods' },
  { name: 'nm_getpeername4', where: 'pods' },
  { name: 'nm_getpeername6', where: 'pods' },
  { name: 'nm_connect4', where: 'pods' },
  { name: 'nm_connect6', where: 'pods' },
];

interface OpenLink extends AttachedLink {
  handle: number;
  pinPath: string;
}

export class Datapath {
  readonly pinDir: string;
  readonly config: DatapathConfig;
  private readonly obj: number;
  private readonly fds: { config: number; meshNetns: number; origByCookie: number; origByTuple: number; liveness: number };
  private readonly openLinks: OpenLink[];
  private closed = false;

  private constructor(pinDir: string, config: DatapathConfig, obj: number, fds: Datapath['fds'], links: OpenLink[]) {
    this.pinDir = pinDir;
    this.config = config;
    this.obj = obj;
    this.fds = fds;
    this.openLinks = links;
  }

  /**
   * Loads and attaches the datapath (or takes over the one a previous agent pinned in
   * `pinDir`). Mounts bpffs when it is missing.
   */
  static async open(opts: DatapathOptions): Promise<Datapath> {
    const n = native();
    const pinDir = path.resolve(opts.pinDir ?? DEFAULT_PIN_DIR);
    const config: DatapathConfig = {
      proxyIp: opts.proxyIp,
      proxyPort: opts.proxyPort ?? AGENT_PORTS.outbound,
      mark: opts.mark ?? 0,
    };
    if (!net.isIPv4(config.proxyIp)) throw new NodemeshError('NM_ERR_BPF', `proxyIp ${config.proxyIp} must be an IPv4 address`);
    if (!Number.isInteger(config.proxyPort) || config.proxyPort < 1 || config.proxyPort > 65535)
      throw new NodemeshError('NM_ERR_BPF', `proxyPort ${config.proxyPort} must be 1-65535`);
    if (!Number.isInteger(config.mark) || config.mark < 0 || config.mark > 0xffffffff)
      throw new NodemeshError('NM_ERR_BPF', `mark ${config.mark} must be a u32`);
    const cgroups: Record<Where, string> = {
      pods: checkCgroup('pods', opts.podsCgroup),
      proxy: checkCgroup('proxy', opts.proxyCgroup),
    };
    const objectPath = opts.objectPath ?? packagePath('build', 'bpf', 'redirect.bpf.o');

    ensureBpffs(pinDir);
    fs.mkdirSync(path.join(pinDir, 'maps'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(pinDir, 'links'), { recursive: true, mode: 0o700 });

    const obj = nat('NM_ERR_BPF', 'open eBPF object', (x) => x.openObject(objectPath));
    const links: OpenLink[] = [];
    try {
      const names = n.layout.maps;
      for (const m of Object.values(names)) nat('NM_ERR_BPF', `pin map ${m}`, (x) => x.setMapPinPath(obj, m, path.join(pinDir, 'maps', m)));
      nat('NM_ERR_BPF', `load ${objectPath}`, (x) => x.load(obj));
      const fds = {
        config: n.mapFd(obj, names.config),
        meshNetns: n.mapFd(obj, names.meshNetns),
        origByCookie: n.mapFd(obj, names.origByCookie),
        origByTuple: n.mapFd(obj, names.origByTuple),
        liveness: n.mapFd(obj, names.liveness),
      };
      checkMap(n, fds.config, names.config, U32, CONFIG.size);
      checkMap(n, fds.liveness, names.liveness, U32, LIVENESS.size);
      checkMap(n, fds.meshNetns, names.meshNetns, U64, U32);
      checkMap(n, fds.origByCookie, names.origByCookie, U64, ORIG_DST.size);
      checkMap(n, fds.origByTuple, names.origByTuple, TUPLE4.size, ORIG_DST.size);
      // configure before the connect hooks can run
      nat('NM_ERR_BPF', 'write nm_config', (x) => x.mapUpdate(fds.config, u32(0), encodeConfig(config), 0));
      for (const p of PROGRAMS) links.push(attach(obj, p.name, cgroups[p.where], path.join(pinDir, 'links', pinName(p, cgroups.proxy))));
      pruneDefunctProxyLinks(n, path.join(pinDir, 'links'));
      const dp = new Datapath(pinDir, config, obj, fds, links);
      log.info({ pinDir, ...cgroups, ...config, reused: links.filter((l) => l.reused).map((l) => l.program) }, 'datapath attached');
      return dp;
    } catch (err) {
      // undo what this call attached; links reused from an earlier agent stay as they were
      for (const l of links.reverse()) {
        if (!l.reused)
          tryAll(
            () => n.linkUnpin(l.handle),
            () => n.linkDetach(l.handle),
          );
        tryAll(() => n.linkDestroy(l.handle));
      }
      n.closeObject(obj);
      throw err;
    }
  }

  /**
   * Redirect the TCP connections of this network namespace; returns its cookie. `failOpen`:
   * while the proxy is not alive, its connects are left alone instead (enrolling again
   * changes it).
   */
  enroll(netnsPath: string, opts: { failOpen?: boolean } = {}): bigint {
    this.assertOpen();
    const cookie = nat('NM_ERR_NETNS', `read the netns cookie of ${netnsPath}`, (x) => x.netnsCookie(netnsPath));
    const flags = u32(NETNS_FLAGS.enrolled | (opts.failOpen ? NETNS_FLAGS.failOpen : 0));
    nat('NM_ERR_BPF', `enrol netns ${netnsPath}`, (x) => x.mapUpdate(this.fds.meshNetns, u64(cookie), flags, 0));
    log.debug({ netns: netnsPath, cookie: String(cookie), failOpen: opts.failOpen === true }, 'netns enrolled');
    return cookie;
  }

  /**
   * The proxy serves: the programs count it alive for `timeoutMs` from now. The clock is the
   * kernel's CLOCK_MONOTONIC (process.hrtime reads it on Linux), the one bpf_ktime_get_ns()
   * reads, not the injectable clock: the kernel compares the two. (A time namespace would
   * offset it; nodemesh's agent never runs in one.)
   */
  heartbeat(timeoutMs: number): void {
    this.assertOpen();
    const v = encodeLiveness(process.hrtime.bigint(), BigInt(Math.round(timeoutMs * 1e6)));
    nat('NM_ERR_BPF', 'write nm_liveness', (x) => x.mapUpdate(this.fds.liveness, u32(0), v, 0));
  }

  /** The proxy stopped serving (a graceful stop): fail-open pods bypass it at once. */
  markDown(): void {
    this.assertOpen();
    nat('NM_ERR_BPF', 'write nm_liveness', (x) => x.mapUpdate(this.fds.liveness, u32(0), encodeLiveness(0n, 0n), 0));
  }

  /** What nm_liveness holds now, and whether the programs would count the proxy alive. */
  liveness(): { heartbeatNs: bigint; timeoutNs: bigint; alive: boolean } {
    this.assertOpen();
    const v = nat('NM_ERR_BPF', 'read nm_liveness', (x) => x.mapLookup(this.fds.liveness, u32(0), LIVENESS.size));
    const l = v ? decodeLiveness(v) : { heartbeatNs: 0n, timeoutNs: 0n };
    return { ...l, alive: l.heartbeatNs !== 0n && process.hrtime.bigint() - l.heartbeatNs <= l.timeoutNs };
  }

  /** Stop redirecting new connections of this netns; false if it was not enrolled. */
  unenroll(cookie: bigint): boolean {
    this.assertOpen();
    const had = nat('NM_ERR_BPF', `unenrol netns cookie ${cookie}`, (x) => x.mapDelete(this.fds.meshNetns, u64(cookie)));
    log.debug({ cookie: String(cookie), had }, 'netns unenrolled');
    return had;
  }

  /** Cookies of the enrolled network namespaces (including those a previous agent enrolled). */
  enrolled(): bigint[] {
    this.assertOpen();
    return nat('NM_ERR_BPF', 'list nm_mesh_netns', (x) => x.mapKeys(this.fds.meshNetns, U64)).map(readU64);
  }

  /** The cookie of a network namespace, without enrolling it. */
  static netnsCookie(netnsPath: string): bigint {
    return nat('NM_ERR_NETNS', `read the netns cookie of ${netnsPath}`, (x) => x.netnsCookie(netnsPath));
  }

  /**
   * Debugging: the original destination recorded for a connection the proxy sees as
   * `tuple` (proxyIp/proxyPort default to this datapath's proxy address).
   */
  originalDstByTuple(t: Omit<ProxyTuple, 'proxyIp' | 'proxyPort'> & Partial<ProxyTuple>): OriginalDestination | null {
    this.assertOpen();
    const key = encodeTuple({ proxyIp: this.config.proxyIp, proxyPort: this.config.proxyPort, ...t });
    const v = nat('NM_ERR_BPF', 'look up nm_orig_by_tuple', (x) => x.mapLookup(this.fds.origByTuple, key, ORIG_DST.size));
    return v ? decodeOrig(v, native().layout.origFlagV4Mapped) : null;
  }

  /** Debugging: every connection currently recorded in nm_orig_by_tuple. */
  originalDsts(): Array<{ tuple: ProxyTuple; dst: OriginalDestination }> {
    this.assertOpen();
    return nat('NM_ERR_BPF', 'list nm_orig_by_tuple', (x) =>
      x.mapKeys(this.fds.origByTuple, TUPLE4.size).flatMap((k) => {
        const v = x.mapLookup(this.fds.origByTuple, k, ORIG_DST.size); // null if it went meanwhile
        return v ? [{ tuple: decodeTuple(k), dst: decodeOrig(v, x.layout.origFlagV4Mapped) }] : [];
      }),
    );
  }

  /** The attached programs (for /debug and tests). */
  links(): AttachedLink[] {
    return this.openLinks.map(({ program, cgroup, linkId, progId, reused }) => ({ program, cgroup, linkId, progId, reused }));
  }

  /**
   * unpin: false (every stop of the agent): only close our fds; the pinned links keep
   * redirecting until the next agent takes them over. unpin: true (tests, a failed first
   * start): detach every program, unpin every link and map and remove the pin dir.
   */
  close({ unpin = false }: { unpin?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    const n = native();
    for (const l of [...this.openLinks].reverse()) {
      if (unpin)
        tryAll(
          () => n.linkDetach(l.handle),
          () => n.linkUnpin(l.handle),
        );
      tryAll(() => n.linkDestroy(l.handle));
    }
    n.closeObject(this.obj);
    if (unpin) removePinDir(this.pinDir);
    log.info({ pinDir: this.pinDir, unpin }, unpin ? 'datapath detached and unpinned' : 'datapath closed, left pinned');
  }

  /** An earlier agent's links are pinned in `pinDir`: its programs redirect pods without any agent. */
  static pinned(pinDir: string = DEFAULT_PIN_DIR): boolean {
    const links = path.join(path.resolve(pinDir), 'links');
    return PROGRAMS.filter((p) => p.where === 'pods').every((p) => fs.existsSync(path.join(links, p.name)));
  }

  /**
   * Removes what a crashed agent left in `pinDir`: detaches its pinned links (even if a
   * stuck process still holds them) and removes its pins. Returns what was removed.
   */
  static cleanup(pinDir: string = DEFAULT_PIN_DIR): { links: string[]; maps: string[] } {
    const dir = path.resolve(pinDir);
    const removed = { links: [] as string[], maps: [] as string[] };
    if (mountOf(dir)?.type !== 'bpf' || !fs.existsSync(dir)) return removed;
    const n = native();
    const linkDir = path.join(dir, 'links');
    for (const name of fs.existsSync(linkDir) ? fs.readdirSync(linkDir) : []) {
      const p = path.join(linkDir, name);
      let h: number | undefined;
      try {
        h = n.linkOpen(p);
        n.linkDetach(h);
      } catch (err) {
        log.warn({ err, pin: p }, 'could not detach a pinned link; removing its pin');
      } finally {
        if (h !== undefined) n.linkDestroy(h);
      }
      fs.rmSync(p, { force: true });
      removed.links.push(name.split('@')[0]!);
    }
    const mapDir = path.join(dir, 'maps');
    if (fs.existsSync(mapDir)) removed.maps.push(...fs.readdirSync(mapDir));
    removePinDir(dir);
    log.info({ pinDir: dir, ...removed }, 'cleaned up a previous datapath');
    return removed;
  }

  /**
   * An upgrade across a pin version: the pins of older versions beside `pinDir`
   * (`…/nodemesh/v1` beside `…/nodemesh/v2`) are an older agent's datapath, whose links
   * still run next to ours. Called once ours are attached and the tc filters run our
   * programs: detaches their links and removes their pins. Returns what it removed.
   */
  static retireOlderVersions(pinDir: string): string[] {
    const retired: string[] = [];
    for (const dir of olderPinVersions(path.resolve(pinDir), (p) => (fs.existsSync(p) ? fs.readdirSync(p) : []))) {
      Datapath.cleanup(dir);
      retired.push(dir);
    }
    if (retired.length) log.info({ pinDir, retired }, 'retired the datapath pins of an older version');
    return retired;
  }

  private assertOpen(): void {
    if (this.closed) throw new NodemeshError('NM_ERR_BPF', `datapath ${this.pinDir} is closed`);
  }
}

/** The sibling pin dirs of an older version: `…/v1` for `…/v3`, none unless pinDir ends in vN. */
export function olderPinVersions(pinDir: string, list: (dir: string) => string[]): string[] {
  const m = /^v(\d+)$/.exec(path.basename(pinDir));
  if (!m) return [];
  const ours = Number(m[1]);
  const parent = path.dirname(pinDir);
  return list(parent)
    .filter((e) => /^v\d+$/.test(e) && Number(e.slice(1)) < ours)
    .sort()
    .map((e) => path.join(parent, e));
}

/**
 * The pin of a program's link. The pods' programs have one link each. The proxy's
 * (getsockopt) is attached to the agent's own cgroup, which on Kubernetes is another one
 * for every agent container: one link per cgroup (`nm_getsockopt@<cgroup id>`), so that an
 * agent draining beside its successor keeps answering SO_ORIGINAL_DST on its connections.
 */
function pinName(p: { name: string; where: Where }, proxyCgroup: string): string {
  return p.where === 'proxy' ? `${p.name}@${cgroupId(proxyCgroup)}` : p.name;
}

/** Links to the cgroup of an agent that is gone (the kernel detached them: cgroup id 0) lose their pins. */
function pruneDefunctProxyLinks(n: Native, dir: string): void {
  for (const name of fs.readdirSync(dir).filter((f) => f.includes('@'))) {
    const p = path.join(dir, name);
    let h: number | undefined;
    try {
      h = n.linkOpen(p);
      if (n.linkInfo(h).cgroupId !== 0n) continue;
      fs.rmSync(p, { force: true });
      log.info({ pin: p }, "removed the pinned link of a gone agent's cgroup");
    } catch (err) {
      log.debug({ err, pin: p }, 'pinned link left as it is');
    } finally {
      if (h !== undefined) n.linkDestroy(h);
    }
  }
}

/** Attaches prog to cgroupDir through a link pinned at pinPath, or takes over the pinned one. */
function attach(obj: number, prog: string, cgroupDir: string, pinPath: string): OpenLink {
  const n = native();
  const done = (handle: number, reused: boolean): OpenLink => {
    const info = n.linkInfo(handle);
    return { program: prog, cgroup: cgroupDir, linkId: info.id, progId: info.progId, reused, handle, pinPath };
  };
  if (fs.existsSync(pinPath)) {
    const h = nat('NM_ERR_BPF', `open pinned link ${pinPath}`, (x) => x.linkOpen(pinPath));
    try {
      if (n.linkInfo(h).cgroupId === cgroupId(cgroupDir)) {
        n.linkUpdateProgram(h, obj, prog); // atomic: no window without the program
        return done(h, true);
      }
      log.info({ pin: pinPath, cgroup: cgroupDir }, 'pinned link is attached elsewhere; replacing it');
    } catch (err) {
      log.warn({ err, pin: pinPath }, 'cannot take over the pinned link; replacing it');
    }
    tryAll(
      () => n.linkDetach(h),
      () => n.linkUnpin(h),
      () => n.linkDestroy(h),
    );
    fs.rmSync(pinPath, { force: true });
  }
  const h = nat('NM_ERR_CGROUP', `attach ${prog} to ${cgroupDir}`, (x) => x.attachCgroup(obj, prog, cgroupDir));
  try {
    nat('NM_ERR_BPF', `pin link of ${prog}`, (x) => x.linkPin(h, pinPath));
    return done(h, false);
  } catch (err) {
    n.linkDestroy(h);
    throw err;
  }
}

function checkMap(n: Native, fd: number, name: string, keySize: number, valueSize: number): void {
  const info = n.mapInfo(fd);
  if (info.keySize !== keySize || info.valueSize !== valueSize)
    throw new NodemeshError(
      'NM_ERR_BPF',
      `map ${name} has key/value size ${info.keySize}/${info.valueSize}, the codec expects ${keySize}/${valueSize}; rebuild (bash scripts/build.sh)`,
    );
}

/** rm -r the pin dir, and its parent when that is the now empty `nodemesh/` above `vN`. */
function removePinDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  if (/^v\d+$/.test(path.basename(dir))) {
    try {
      fs.rmdirSync(path.dirname(dir));
    } catch {
      // not empty (another version or another node's pins): keep it
    }
  }
}
