// Inbound capture in the kernel, as the agent sees it: load build/bpf/inbound.bpf.o, pin
// its maps beside the redirect datapath's, attach its tc programs to the interfaces of
// the node's network namespace, install the policy route that delivers captured packets
// locally, and keep the set of meshed pod IPs and the proxy's 15006 listener in its maps.
//
// Which interface gets what (re-scanned on every reconcile, so new pods are covered):
//   - every Ethernet interface that is nobody's port (uplinks such as eth0, the pod
//     bridge cbr0, a routed CNI's pod veths): `nm_inbound` on tc ingress, which assigns
//     a captured packet to the proxy's socket and marks it;
//   - every bridge port (a pod's node-side veth on cbr0): `nm_inbound_port` on tc egress,
//     which hands frames the bridge switched between two pods of this node to the
//     bridge's ingress (they never meet the IP stack otherwise).
//   - loopback, non-Ethernet devices and ports of bonds/teams: nothing.
// Policy route: `ip rule add pref 15006 fwmark 0x111/0xfff lookup 15006` and `ip route add
// local 0.0.0.0/0 dev lo table 15006`: a marked packet for a pod IP is this node's.
//
// Restarts: filters use a fixed handle and priority, so a new agent replaces the program
// of a filter a stopped or crashed one left (no window without capture) and finds its maps
// pinned. Stopping never removes the capture: with no listener the programs drop new
// connections to meshed pods (fail closed, STRICT kept), unless a pod fails open and the
// proxy's heartbeat is stale (INBOUND_FLAGS.failOpen). cleanup() (`nodemesh agent cleanup`,
// an uninstall) removes filters, rule, route and pins.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { NodemeshError } from '../../common/errors.js';
import { JoinableRun } from '../../common/joinable-run.js';
import { packagePath } from '../../common/paths.js';
import { logger } from '../../common/log.js';
import { AGENT_PORTS } from '../../common/ports.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { nat, native, tryAll, type Native, type TcDirection } from './addon.js';
import { INBOUND_FLAGS, checkInboundLayout, encodeInboundConfig, encodeInboundPort, ip4Key, readIp4Key, readU32, u32, u64, U32 } from './codecs.js';
import { DEFAULT_PIN_DIR } from './redirect.js';
import { ensureBpffs, mountOf } from './mounts.js';

const log = logger('agent/datapath-inbound');
const execFileP = promisify(execFile);

/**
 * Defaults: the mark Istio's ambient mode uses for TPROXY; the rule's priority and table
 * are numbered after the capture port, so `ip rule` and `ip route show table all` name it.
 */
export const INBOUND_DEFAULTS = { mark: 0x111, mask: 0xfff, table: AGENT_PORTS.inbound, rulePriority: AGENT_PORTS.inbound } as const;
/**
 * Our tc filters: fixed so a restarted agent replaces them instead of adding more. The
 * handle reads as the capture port in `tc filter show` (0x15006).
 */
export const TC_FILTER = { handle: Number.parseInt(String(AGENT_PORTS.inbound), 16), priority: 1 } as const;
const PROGRAMS = { ingress: 'nm_inbound', port: 'nm_inbound_port' } as const;

const call = <T>(context: string, fn: (n: Native) => T): T => nat('NM_ERR_BPF', context, fn);

// ---- the node's interfaces ---------------------------------------------------------

export interface NodeLink {
  ifindex: number;
  name: string;
  /** what this agent puts on it */
  role: 'ingress' | 'port' | 'none';
  /** for a bridge port: the bridge's ifindex */
  bridge?: number;
}

interface IpLink {
  ifindex: number;
  ifname: string;
  link_type?: string;
  master?: string;
  linkinfo?: { info_kind?: string; info_slave_kind?: string };
}

/** The interfaces of the caller's network namespace and the role each plays. */
export async function scanLinks(): Promise<NodeLink[]> {
  const links = JSON.parse(await ip(['-j', '-d', 'link', 'show'])) as IpLink[];
  const byName = new Map(links.map((l) => [l.ifname, l]));
  return links.map((l): NodeLink => {
    const base = { ifindex: l.ifindex, name: l.ifname };
    if (l.link_type !== 'ether') return { ...base, role: 'none' }; // loopback, tun, wireguard
    const slave = l.linkinfo?.info_slave_kind;
    if (slave === 'bridge' && l.master && byName.has(l.master)) return { ...base, role: 'port', bridge: byName.get(l.master)!.ifindex };
    if (slave) return { ...base, role: 'none' }; // a bond's or team's port: its master is hooked
    return { ...base, role: 'ingress' };
  });
}

async function ip(args: string[]): Promise<string> {
  return run('ip', args);
}

async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    const hint = e.code === 'ENOENT' ? `; the agent needs iproute2 (${cmd}) in its image` : '';
    throw new NodemeshError('NM_ERR_BPF', `${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}${hint}`, { cause: err });
  }
}

// ---- policy route ------------------------------------------------------------------

export interface PolicyRoute {
  mark: number;
  mask: number;
  table: number;
  rulePriority: number;
}

const hex = (n: number) => `0x${n.toString(16)}`;

interface IpRule {
  priority?: number;
  fwmark?: string;
  fwmask?: string;
  table?: string;
}

async function ourRules(r: PolicyRoute): Promise<IpRule[]> {
  const rules = JSON.parse(await ip(['-4', '-j', 'rule', 'show'])) as IpRule[];
  return rules.filter((x) => x.priority === r.rulePriority);
}

/** Adds the rule and route if missing; a different rule at our priority is replaced. */
export async function ensurePolicyRoute(r: PolicyRoute): Promise<void> {
  await ip(['-4', 'route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', String(r.table)]);
  const rules = await ourRules(r);
  const same = (x: IpRule) => x.fwmark === hex(r.mark) && x.fwmask === hex(r.mask) && x.table === String(r.table);
  if (rules.length === 1 && same(rules[0]!)) return;
  for (let i = 0; i < rules.length; i++) await ip(['-4', 'rule', 'del', 'pref', String(r.rulePriority)]);
  await ip(['-4', 'rule', 'add', 'pref', String(r.rulePriority), 'fwmark', `${hex(r.mark)}/${hex(r.mask)}`, 'lookup', String(r.table)]);
}

/** Removes our rule and route; what is already gone is fine. */
export async function removePolicyRoute(r: PolicyRoute): Promise<{ rules: number; route: boolean }> {
  const out = { rules: 0, route: false };
  for (const x of await ourRules(r)) {
    if (x.fwmark !== hex(r.mark) || x.table !== String(r.table)) continue; // someone else's rule
    await ip(['-4', 'rule', 'del', 'pref', String(r.rulePriority), 'fwmark', `${x.fwmark}/${x.fwmask ?? '0xffffffff'}`, 'lookup', x.table]);
    out.rules++;
  }
  try {
    await ip(['-4', 'route', 'del', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', String(r.table)]);
    out.route = true;
  } catch (err) {
    if (!/No such process|Cannot find|does not exist/i.test((err as Error).message)) throw err;
  }
  return out;
}

// ---- the inbound datapath ----------------------------------------------------------

/** A pod whose plaintext this node captures, and whether it fails open. */
export interface CapturedPod {
  ip: string;
  failOpen: boolean;
}

/** What this node captures: its meshed pods in the snapshot. */
export function meshedPods(snapshot: Snapshot, node: string): CapturedPod[] {
  return snapshot.workloads.filter((w) => w.node === node && w.meshed && w.ip).map((w) => ({ ip: w.ip, failOpen: w.failOpen }));
}

export interface InboundDatapathOptions {
  /** the redirect datapath's pin directory; the maps go under <pinDir>/maps/ */
  pinDir?: string;
  mark?: number;
  mask?: number;
  table?: number;
  rulePriority?: number;
  /** default <package>/build/bpf/inbound.bpf.o */
  objectPath?: string;
}

export interface InboundAttachment {
  ifindex: number;
  name: string;
  direction: TcDirection;
  program: string;
  progId: number;
}

export class InboundDatapath {
  readonly pinDir: string;
  readonly route: PolicyRoute;
  private readonly attached = new Map<number, InboundAttachment>();
  /** pod IP -> the flags written for it */
  private readonly pods = new Map<string, number>();
  private running: Promise<void> = Promise.resolve();
  /** reconciles one at a time, joined by the calls made before one starts */
  private readonly reconciles = new JoinableRun<CapturedPod[]>(
    (start) => {
      const next = this.running.then(start);
      this.running = next.catch(() => undefined);
      return next;
    },
    (pods) => this.reconcileNow(pods),
  );
  private closed = false;

  private constructor(
    pinDir: string,
    route: PolicyRoute,
    private readonly obj: number,
    private readonly fds: { config: number; pods: number; listener: number; ports: number },
  ) {
    this.pinDir = pinDir;
    this.route = route;
  }

  /** Loads the programs (or takes over the maps an earlier agent pinned) and the route. */
  static async open(opts: InboundDatapathOptions = {}): Promise<InboundDatapath> {
    const n = native();
    checkInboundLayout(n.layout);
    const pinDir = path.resolve(opts.pinDir ?? DEFAULT_PIN_DIR);
    const route: PolicyRoute = {
      mark: opts.mark ?? INBOUND_DEFAULTS.mark,
      mask: opts.mask ?? INBOUND_DEFAULTS.mask,
      table: opts.table ?? INBOUND_DEFAULTS.table,
      rulePriority: opts.rulePriority ?? INBOUND_DEFAULTS.rulePriority,
    };
    if (!route.mark || (route.mark & route.mask) !== route.mark)
      throw new NodemeshError('NM_ERR_BPF', `inbound mark ${hex(route.mark)} must be non-zero and inside its mask ${hex(route.mask)}`);
    const objectPath = opts.objectPath ?? packagePath('build', 'bpf', 'inbound.bpf.o');
    ensureBpffs(pinDir);
    fs.mkdirSync(path.join(pinDir, 'maps'), { recursive: true, mode: 0o700 });
    const obj = call('open eBPF object', (x) => x.openObject(objectPath));
    try {
      const names = n.layout.inboundMaps;
      // nm_liveness is the redirect object's too: one map, through the shared pin
      for (const m of [...Object.values(names), n.layout.maps.liveness]) call(`pin map ${m}`, (x) => x.setMapPinPath(obj, m, path.join(pinDir, 'maps', m)));
      call(`load ${objectPath}`, (x) => x.load(obj));
      const fds = {
        config: n.mapFd(obj, names.config),
        pods: n.mapFd(obj, names.pods),
        listener: n.mapFd(obj, names.listener),
        ports: n.mapFd(obj, names.ports),
      };
      const config = encodeInboundConfig(route.mark, route.mask);
      await ensurePolicyRoute(route); // before the programs can mark anything
      call('write nm_inbound_config', (x) => x.mapUpdate(fds.config, u32(0), config, 0));
      const dp = new InboundDatapath(pinDir, route, obj, fds);
      // pods an earlier agent left in the pinned map: the first reconcile drops the stale
      for (const k of n.mapKeys(fds.pods, U32)) {
        const v = n.mapLookup(fds.pods, k, U32);
        if (v) dp.pods.set(readIp4Key(k), readU32(v));
      }
      log.info({ pinDir, ...route, adoptedPods: dp.pods.size }, 'inbound datapath loaded');
      return dp;
    } catch (err) {
      n.closeObject(obj);
      throw err;
    }
  }

  /**
   * A restart: puts the new listener into the SOCKMAP an earlier agent pinned, before this
   * agent has loaded anything, so captured SYNs reach it at once (until then they are
   * dropped and retried). False when there is no such pin (a first start).
   */
  static adoptListener(pinDir: string, listenerFd: number): boolean {
    const pin = path.join(path.resolve(pinDir), 'maps', native().layout.inboundMaps.listener);
    if (!fs.existsSync(pin)) return false;
    const n = native();
    const map = call(`open ${pin}`, (x) => x.mapOpenPinned(pin));
    try {
      call('put the inbound listener into the pinned nm_inbound_listener', (x) => x.mapUpdate(map, u32(0), u64(listenerFd), 0));
    } finally {
      n.closeFd(map);
    }
    return true;
  }

  /** The proxy's transparent listener: captured SYNs are assigned to it. */
  setListener(fd: number): void {
    this.assertOpen();
    call('put the inbound listener into nm_inbound_listener', (x) => x.mapUpdate(this.fds.listener, u32(0), u64(fd), 0));
  }

  /** Pods an earlier agent left captured (before the first reconcile): a restart, not a first start. */
  get adoptedPods(): number {
    return this.pods.size;
  }

  /**
   * Attaches to the interfaces that appeared since the last call, then makes
   * nm_inbound_pods equal to `pods` (the meshed pods of this node). Serialized, and
   * coalesced: while a reconcile is queued and not started, later calls join it with their
   * pods (the newest win), so each CNI ADD of a burst does not list the node's links again.
   * Resolves once a reconcile that started after this call is done.
   */
  reconcile(pods: Iterable<CapturedPod>): Promise<void> {
    return this.reconciles.request([...pods]);
  }

  /** What is attached where (for /debug and tests). */
  attachments(): InboundAttachment[] {
    return [...this.attached.values()];
  }

  capturedPods(): string[] {
    return [...this.pods.keys()].sort();
  }

  /** The captured pods that fail open (for /debug and tests). */
  failOpenPods(): string[] {
    return [...this.pods].filter(([, f]) => (f & INBOUND_FLAGS.failOpen) !== 0).map(([ip]) => ip).sort();
  }

  private async reconcileNow(pods: CapturedPod[]): Promise<void> {
    if (this.closed) return;
    const n = native();
    const links = await scanLinks();
    const seen = new Set<number>();
    const ports = new Map<number, number>(); // port ifindex -> bridge ifindex
    // the bridges and uplinks first: the ports hand frames to the bridge's program
    for (const l of [...links].sort((a, b) => Number(a.role === 'port') - Number(b.role === 'port'))) {
      if (l.role === 'none') continue;
      seen.add(l.ifindex);
      const direction: TcDirection = l.role === 'port' ? 'egress' : 'ingress';
      const program = l.role === 'port' ? PROGRAMS.port : PROGRAMS.ingress;
      if (l.role === 'port') ports.set(l.ifindex, l.bridge!);
      const have = this.attached.get(l.ifindex);
      if (have && have.name === l.name && have.direction === direction) continue;
      if (have) this.detachOne(have); // enslaved or released since: swap the role
      try {
        const progId = n.tcAttach(this.obj, program, l.ifindex, direction, TC_FILTER.handle, TC_FILTER.priority);
        this.attached.set(l.ifindex, { ifindex: l.ifindex, name: l.name, direction, program, progId });
        log.debug({ link: l.name, direction, program, progId }, 'tc program attached');
      } catch (err) {
        // a pod's veth can vanish between the scan and the attach
        if ((err as { errno?: number }).errno === os.constants.errno.ENODEV) continue;
        throw new NodemeshError('NM_ERR_BPF', `attach ${program} to ${l.name} ${direction}: ${(err as Error).message}`, { cause: err });
      }
    }
    for (const [ifindex] of this.attached) if (!seen.has(ifindex)) this.attached.delete(ifindex); // gone with its link
    this.syncPorts(n, ports);
    this.syncPods(n, pods);
  }

  private syncPorts(n: Native, want: Map<number, number>): void {
    for (const k of n.mapKeys(this.fds.ports, U32)) {
      const ifindex = readU32(k);
      if (!want.has(ifindex)) n.mapDelete(this.fds.ports, k);
    }
    for (const [ifindex, bridge] of want) {
      const v = encodeInboundPort(bridge);
      call(`write nm_inbound_ports[${ifindex}]`, (x) => x.mapUpdate(this.fds.ports, u32(ifindex), v, 0));
    }
  }

  private syncPods(n: Native, pods: CapturedPod[]): void {
    const want = new Map(pods.filter((p) => net.isIPv4(p.ip)).map((p) => [p.ip, INBOUND_FLAGS.capture | (p.failOpen ? INBOUND_FLAGS.failOpen : 0)]));
    for (const [a, flags] of want) {
      const had = this.pods.get(a);
      if (had === flags) continue;
      call(`capture pod ${a}`, (x) => x.mapUpdate(this.fds.pods, ip4Key(a), u32(flags), 0));
      this.pods.set(a, flags);
      log.info({ pod: a, failOpen: (flags & INBOUND_FLAGS.failOpen) !== 0 }, had === undefined ? 'inbound capture on' : 'inbound capture flags changed');
    }
    for (const a of [...this.pods.keys()]) {
      if (want.has(a)) continue;
      n.mapDelete(this.fds.pods, ip4Key(a));
      this.pods.delete(a);
      log.info({ pod: a }, 'inbound capture off');
    }
  }

  private detachOne(a: InboundAttachment): void {
    try {
      native().tcDetach(a.ifindex, a.direction, TC_FILTER.handle, TC_FILTER.priority);
    } catch (err) {
      log.warn({ err, link: a.name }, 'could not detach a tc filter');
    }
    this.attached.delete(a.ifindex);
  }

  /**
   * unpin: false (every stop of the agent): leave all in place for the next agent, which
   * replaces the programs; meanwhile new connections to meshed pods fail closed. unpin: true
   * (a failed first start, tests): detach every filter, remove the clsact qdiscs left empty,
   * the rule, the route and the pins.
   */
  async close({ unpin = false }: { unpin?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.running;
    const n = native();
    if (unpin) {
      // capture off first: packets in flight pass to the pods as before the mesh
      tryAll(() => n.mapDelete(this.fds.listener, u32(0)));
      const all = [...this.attached.values()];
      for (const a of all) this.detachOne(a);
      for (const a of all) await removeEmptyClsact(a.ifindex, a.name);
    }
    n.closeObject(this.obj);
    if (unpin) {
      await removePolicyRoute(this.route).catch((err: unknown) => log.warn({ err }, 'could not remove the inbound policy route'));
      removePins(this.pinDir);
    }
    log.info({ pinDir: this.pinDir, unpin }, unpin ? 'inbound capture detached and unpinned' : 'inbound datapath closed, left in place');
  }

  /**
   * Removes what an agent that died without SIGTERM left in this network namespace: our
   * tc filters on every interface (found by handle, priority and program name), the
   * clsact qdiscs they leave empty, the rule, the route and the pins in `pinDir`.
   */
  static async cleanup(
    pinDir: string = DEFAULT_PIN_DIR,
    route: Partial<PolicyRoute> = {},
  ): Promise<{ filters: string[]; rules: number; route: boolean; pins: string[] }> {
    const n = native();
    const filters: string[] = [];
    for (const l of await scanLinks()) {
      let removed = false;
      for (const direction of ['ingress', 'egress'] as const) {
        const q = n.tcQuery(l.ifindex, direction, TC_FILTER.handle, TC_FILTER.priority);
        if (!q || !q.progName.startsWith('nm_inbound')) continue;
        if (n.tcDetach(l.ifindex, direction, TC_FILTER.handle, TC_FILTER.priority)) {
          filters.push(`${l.name}/${direction}`);
          removed = true;
        }
      }
      if (removed) await removeEmptyClsact(l.ifindex, l.name);
    }
    const r = await removePolicyRoute({ ...INBOUND_DEFAULTS, ...route });
    const pins = removePins(path.resolve(pinDir));
    log.info({ pinDir, filters, ...r, pins }, 'cleaned up inbound capture');
    return { filters, ...r, pins };
  }

  private assertOpen(): void {
    if (this.closed) throw new NodemeshError('NM_ERR_BPF', `inbound datapath ${this.pinDir} is closed`);
  }
}

/** Our clsact qdisc goes when no filter is left on it (ours or anyone's). */
async function removeEmptyClsact(ifindex: number, name: string): Promise<void> {
  try {
    for (const dir of ['ingress', 'egress']) {
      const filters = JSON.parse((await run('tc', ['-j', 'filter', 'show', 'dev', name, dir])) || '[]') as unknown[];
      if (filters.length > 0) return;
    }
    native().tcHookDestroy(ifindex);
  } catch (err) {
    log.debug({ err, ifindex }, 'clsact qdisc left in place');
  }
}

/** The inbound maps' pins under <pinDir>/maps/ (the redirect datapath removes the rest). */
function removePins(pinDir: string): string[] {
  const dir = path.join(pinDir, 'maps');
  if (mountOf(dir)?.type !== 'bpf' || !fs.existsSync(dir)) return [];
  const names = Object.values(native().layout.inboundMaps);
  const removed = names.filter((m) => fs.existsSync(path.join(dir, m)));
  for (const m of removed) fs.rmSync(path.join(dir, m), { force: true });
  return removed;
}
