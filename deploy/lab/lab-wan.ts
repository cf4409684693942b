// The link between the networks of a two-cluster lab: a router namespace `nm-<lab>-wan`
// with one leg on each cluster's bridge (<subnet>.254), standing in for whatever joins two
// real clusters' networks (the internet, a VPC peering) as far as their gateways' public
// addresses go, and no further:
//
//   cluster A: bridge 172.31.<240+sA>.0/24 ── nm<sA>w ═ wan0 .254 ┐
//                                                                  ├ nm-<lab>-wan  ip_forward=1
//   cluster B: bridge 172.31.<240+sB>.0/24 ── nm<sB>w ═ wan1 .254 ┘ FORWARD: only TCP to/from
//                                                                      a gateway address :15008
//
// A node routes only the other clusters' gateway addresses (/32) through the router; a gateway
// routes the other clusters' node subnets back through it. The router forwards TCP to a
// gateway's port 15008 and its answers, and drops everything else: no node or pod of one
// cluster reaches a node or pod of the other by its address, only the gateway on 15008. A
// capture on a leg (tcpdump -i wanN in the router) sees all that crosses.
import path from 'node:path';
import { AGENT_PORTS } from '../../common/ports.js';
import { ipBatch, NETNS_DIR } from './lab-network.js';
import { run } from './lab-processes.js';
import type { LabMulticlusterState, LabState } from './lab-state.js';

export const WAN_HOST = 254;

/** The router's leg on each cluster's bridge (planned; nothing made). */
export function planWan(parent: string, clusters: LabState[]): LabMulticlusterState['wan'] {
  return {
    netns: `nm-${parent}-wan`,
    legs: clusters.map((c, i) => ({ cluster: c.cluster!.name, ifname: `wan${i}`, vethRoot: `nm${c.slot}w`, ip: c.cluster!.wanIp, bridge: c.bridge!.name })),
  };
}

export async function createWan(wan: LabMulticlusterState['wan'], gatewayAddresses: string[]): Promise<void> {
  const inWan = (cmd: string, args: string[]) => run('nsenter', [`--net=${path.join(NETNS_DIR, wan.netns)}`, '--', cmd, ...args]);
  await run('ip', ['netns', 'add', wan.netns]);
  await ipBatch(wan.netns, ['link set lo up']);
  // IPv4 only: the router says nothing on either network but ARP
  await inWan('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  for (const leg of wan.legs) {
    await ipBatch(undefined, [`link add ${leg.vethRoot} type veth peer name ${leg.ifname} netns ${wan.netns}`, `link set ${leg.vethRoot} master ${leg.bridge} up`]);
    await ipBatch(wan.netns, [`addr add ${leg.ip}/24 dev ${leg.ifname}`, `link set ${leg.ifname} up`]);
  }
  // stateless: a rule for each direction of a gateway's port, no conntrack needed
  const port = String(AGENT_PORTS.hbone);
  await inWan('iptables', ['-w', '-P', 'FORWARD', 'DROP']);
  for (const a of gatewayAddresses) {
    await inWan('iptables', ['-w', '-A', 'FORWARD', '-d', a, '-p', 'tcp', '--dport', port, '-j', 'ACCEPT']);
    await inWan('iptables', ['-w', '-A', 'FORWARD', '-s', a, '-p', 'tcp', '--sport', port, '-j', 'ACCEPT']);
  }
  // nor does the router itself answer anything but ARP: it is no host of either network
  await inWan('iptables', ['-w', '-P', 'INPUT', 'DROP']);
}

/** Each node of a cluster: the other clusters' gateway addresses through the router, nothing else of theirs. */
export async function routeNodesToGateways(state: LabState): Promise<void> {
  const c = state.cluster!;
  for (const n of state.nodes) {
    if (c.remoteGateways.length) await ipBatch(n.netns, c.remoteGateways.map((a) => `route add ${a}/32 via ${c.wanIp} dev eth0`));
  }
}
