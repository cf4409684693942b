// The passthrough never carries a pod to the mesh's own ports.
//
// The node proxy dials upstream from the node's own address (it runs in the node's network
// namespace). A pod's connection forwarded unchanged to its original destination (Istio's
// PassthroughCluster, proxy/outbound.ts) would therefore reach whatever trusts "the node":
// the agent's admin port (/debug/state: enrolled pods, netns paths, serials; /debug/tap: every
// connection of the node), its other listeners, and the control plane (15012, 15014), seen
// as coming from the node. A meshed pod would gain by being meshed what an unmeshed one
// does not have. So a redirected connection whose original destination is one of those is
// refused (reset, counted as nodemesh_agent_proxy_errors_total{reason="mesh_own_port"}):
//
// - 0.0.0.0/8 and 127.0.0.0/8, any port: "this host". In the pod they meant the pod itself;
//   dialled by the proxy they would mean the node. (Loopback is never captured, 0.0.0.0 is.)
// - an address of this node (its interfaces, every few seconds) or of any node of the mesh
//   (the snapshot's nodes), on the agent's ports (15001, 15006, 15008, 15020 and the ports
//   this agent was given);
// - an address of the control plane (its `--control` IPs, or what its name resolves to),
//   on the control plane's ports (15012, 15014 and the `--control` port).
//
// Other ports of the node stay reachable through the passthrough (a node-local DNS cache,
// a hostNetwork exporter): refusing every node port would break what pods legitimately
// reach on their node. Those come from the node's address as they always have.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import type { Socket } from 'node:net';
import type { Snapshot } from '../../control/api/snapshot.js';
import { unmapIpv4 } from '../../common/ip.js';
import { logger } from '../../common/log.js';
import { AGENT_PORTS, CONTROL_PORTS } from '../../common/ports.js';
import { parseHostPort } from '../../common/host-port.js';
import type { ProxyState } from '../state/proxy-state.js';
import { proxyErrors } from '../telemetry/metrics.js';

const log = logger('agent/passthrough-guard');

/** How long the node's interface addresses and the control plane's resolved addresses are reused. */
const REFRESH_MS = 5_000;
const WARN_EVERY_MS = 10_000;

/** The addresses of the network namespace this process runs in (the node's), refreshed every few seconds. */
export class NodeAddresses {
  private cached = new Set<string>();
  private at = -Infinity;

  constructor(private readonly read: () => NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces) {}

  /** Loopback (all of 127/8 and ::1) or an address of one of this namespace's interfaces. */
  has(ip: string): boolean {
    const a = unmapIpv4(ip);
    if (a.startsWith('127.') || a === '::1') return true;
    const now = performance.now();
    if (now - this.at > REFRESH_MS) {
      this.at = now;
      const next = new Set<string>();
      for (const list of Object.values(this.read())) for (const i of list ?? []) next.add(i.address);
      this.cached = next;
    }
    return this.cached.has(a);
  }
}

export interface PassthroughGuardOptions {
  /** ports of this agent beyond AGENT_PORTS (a non-default --admin or outbound port) */
  agentPorts?: number[];
  /** the agent's `--control` (host:port, or several separated by commas) */
  control?: string;
}

export class PassthroughGuard {
  private agentPorts = new Set<number>(Object.values(AGENT_PORTS));
  private controlPorts = new Set<number>(Object.values(CONTROL_PORTS));
  private controlHosts: string[] = [];
  private controlIps = new Set<string>();
  private resolvedAt = -Infinity;
  private resolving = false;
  private nodesOf = new WeakMap<Snapshot, Set<string>>();
  private lastWarn = -Infinity;
  readonly node: NodeAddresses;

  constructor(node = new NodeAddresses()) {
    this.node = node;
  }

  configure(opts: PassthroughGuardOptions): void {
    for (const p of opts.agentPorts ?? []) this.agentPorts.add(p);
    this.controlHosts = [];
    this.controlIps = new Set();
    for (const a of (opts.control ?? '').split(',')) {
      const hp = parseHostPort(a.trim());
      if (!hp) continue;
      if (hp.port) this.controlPorts.add(hp.port);
      if (isIP(hp.host)) this.controlIps.add(hp.host);
      else if (hp.host) this.controlHosts.push(hp.host);
    }
    this.resolvedAt = -Infinity;
    this.resolveControl();
  }

  /** Why a connection to ip:port must not be passed through, or undefined. */
  reason(ip: string, port: number, state?: ProxyState): string | undefined {
    const a = unmapIpv4(ip);
    if (a.startsWith('0.') || a.startsWith('127.') || a === '::' || a === '::1') return 'this host';
    if (this.agentPorts.has(port)) {
      if (this.node.has(a)) return 'a port of this node\'s agent';
      if (state?.snapshot && this.nodeIps(state.snapshot).has(a)) return 'a port of a node agent';
    }
    if (this.controlPorts.has(port)) {
      this.resolveControl();
      if (this.controlIps.has(a)) return 'a port of the control plane';
    }
    return undefined;
  }

  /**
   * Resets `downstream` and counts it when its original destination is one of the mesh's
   * own ports; true when it did. One line in the outbound proxy's accept.
   */
  refuses(downstream: Socket, dst: { ip: string; port: number }, state: ProxyState): boolean {
    const why = this.reason(dst.ip, dst.port, state);
    if (!why) return false;
    proxyErrors.inc({ reason: 'mesh_own_port' });
    const now = performance.now();
    if (now - this.lastWarn > WARN_EVERY_MS) {
      this.lastWarn = now; // a pod that keeps trying must not flood the log
      log.warn({ source: `${downstream.remoteAddress}:${downstream.remotePort}`, destination: `${dst.ip}:${dst.port}`, why }, 'refused: a pod may not reach the mesh\'s own ports through the node proxy (more such refusals are only counted for 10 s)');
    }
    downstream.resetAndDestroy();
    return true;
  }

  private nodeIps(s: Snapshot): Set<string> {
    let ips = this.nodesOf.get(s);
    if (!ips) {
      ips = new Set((s.nodes ?? []).map((n) => n.ip).filter((ip): ip is string => !!ip));
      this.nodesOf.set(s, ips);
    }
    return ips;
  }

  /** The control plane's names resolved in the background, every few seconds at most. */
  private resolveControl(): void {
    if (this.controlHosts.length === 0 || this.resolving || performance.now() - this.resolvedAt < REFRESH_MS) return;
    this.resolving = true;
    this.resolvedAt = performance.now();
    void Promise.all(this.controlHosts.map((h) => lookup(h, { all: true }).then((as) => as.map((x) => x.address), () => [] as string[])))
      .then((lists) => {
        for (const ip of lists.flat()) this.controlIps.add(ip);
      })
      .finally(() => {
        this.resolving = false;
      });
  }
}

/** The one guard of this process (the agent configures it; the outbound proxy asks it). */
export const passthroughGuard = new PassthroughGuard();
