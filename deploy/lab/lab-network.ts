// The lab's network, built with iproute2 (see lab-plan.ts for the addressing):
//
//  root netns: bridge nm<s>b 172.31.<240+s>.1 ── nm<s>n<i> ═╗
//  node netns nm-L-<node>: eth0 172.31.<240+s>.<10+i>  ◀═══╝   ip_forward=1
//    cbr0 10.244.<i>.1/24 ── nm<s>p<j> ═╗                      10.244.<other>.0/24 via other node
//                                       ║                      unreachable 10.96.0.0/12
//  pod netns nm-L-<ns>-<pod>: eth0 10.244.<i>.<k>/24 ◀══╝       default via 10.244.<i>.1
//                                                              unreachable 10.96.0.0/12
//
// No default route leaves a node: the lab is closed, and a pod that is not meshed fails
// fast (EHOSTUNREACH) when it dials a ClusterIP, rather than hanging.
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { SERVICE_RANGE_UNREACHABLE } from './lab-model.js';
import { podPrefixLength } from './lab-plan.js';
import { run } from './lab-processes.js';
import type { LabNodeState, LabPodState, LabState } from './lab-state.js';

export const NETNS_DIR = '/run/netns';
export const ETC_NETNS_DIR = '/etc/netns';

/** `ip` commands for one netns (or the root one), run as one `ip -batch`. */
export async function ipBatch(netns: string | undefined, lines: string[]): Promise<void> {
  const args = [...(netns ? ['-n', netns] : []), '-batch', '-'];
  try {
    await run('ip', args, { input: lines.join('\n') + '\n' });
  } catch (err) {
    throw new NodemeshError('NM_ERR_NETNS', `setting up ${netns ? `netns ${netns}` : 'the root netns'} failed: ${(err as Error).message}\n  commands:\n    ${lines.join('\n    ')}`, { cause: err });
  }
}

export async function createBridge(bridge: NonNullable<LabState['bridge']>): Promise<void> {
  // nf_call_iptables 0: bridged lab traffic never meets the host's firewall (br_netfilter)
  await ipBatch(undefined, [
    `link add ${bridge.name} type bridge nf_call_iptables 0`,
    `addr add ${bridge.ip}/24 dev ${bridge.name}`,
    `link set ${bridge.name} up`,
  ]);
}

export async function createNode(node: LabNodeState, all: LabNodeState[], bridge: NonNullable<LabState['bridge']>): Promise<void> {
  await run('ip', ['netns', 'add', node.netns]);
  await ipBatch(undefined, [`link add ${node.vethRoot} type veth peer name eth0 netns ${node.netns}`, `link set ${node.vethRoot} master ${bridge.name} up`]);
  await ipBatch(node.netns, [
    'link set lo up',
    `addr add ${node.ip}/24 dev eth0`,
    'link set eth0 up',
    `link add ${node.podBridge} type bridge nf_call_iptables 0`,
    `addr add ${node.podBridgeIp}/${podPrefixLength(node)} dev ${node.podBridge}`,
    `link set ${node.podBridge} up`,
    ...all.filter((o) => o.name !== node.name).map((o) => `route add ${o.podCidr} via ${o.ip} dev eth0`),
    `route add unreachable ${SERVICE_RANGE_UNREACHABLE}`,
  ]);
  await run('nsenter', [`--net=${path.join(NETNS_DIR, node.netns)}`, '--', 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
}

export async function createPod(pod: LabPodState, node: LabNodeState): Promise<void> {
  await run('ip', ['netns', 'add', pod.netns]);
  await ipBatch(undefined, [`link add ${pod.vethNode} netns ${node.netns} type veth peer name eth0 netns ${pod.netns}`]);
  await ipBatch(node.netns, [`link set ${pod.vethNode} master ${node.podBridge} up`]);
  await ipBatch(pod.netns, [
    'link set lo up',
    `addr add ${pod.ip}/${podPrefixLength(node)} dev eth0`,
    'link set eth0 up',
    `route add default via ${node.podBridgeIp} dev eth0`,
    // Also in the pod, not only in the node: through the node, the pod learns of the
    // unreachable route from an ICMP error, and the kernel rate-limits those (ip_error:
    // ~1/s per source, a global sysctl), so most connects would hang in SYN retries. Here
    // connect() fails at once, locally. A meshed pod is unaffected: its connect4 hook
    // rewrites the destination before the route lookup.
    `route add unreachable ${SERVICE_RANGE_UNREACHABLE}`,
  ]);
  // the agent scans its node's directory of pod netns, not all of /run/netns (pod IPs
  // repeat across labs)
  await mkdir(node.netnsDir, { recursive: true });
  await rm(path.join(node.netnsDir, pod.netns), { force: true });
  await symlink(path.join(NETNS_DIR, pod.netns), path.join(node.netnsDir, pod.netns));
}

/**
 * /etc/netns/<netns>/: `ip netns exec` bind-mounts each file over /etc/<file>. hosts
 * resolves the Services; resolv.conf points at the pod's own loopback, so a name that is
 * not in hosts fails at once instead of timing out on a nameserver the lab cannot reach.
 */
export async function writePodEtc(pod: LabPodState, hosts: string): Promise<void> {
  await mkdir(pod.etcDir, { recursive: true });
  await writeFile(path.join(pod.etcDir, 'hosts'), hosts);
  await writeFile(path.join(pod.etcDir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
}

export async function deleteNetns(name: string): Promise<boolean> {
  try {
    await run('ip', ['netns', 'del', name]);
    return true;
  } catch (err) {
    if (/No such file/i.test((err as Error).message)) return false;
    throw err;
  }
}

export async function deleteLink(name: string): Promise<boolean> {
  try {
    await run('ip', ['link', 'del', name]);
    return true;
  } catch (err) {
    // gone already: a veth dies with its peer's namespace, and the kernel removes it
    // asynchronously, so a link listed a moment ago may be "No such device" now
    if (/Cannot find device|does not exist|No such device/i.test((err as Error).message)) return false;
    throw err;
  }
}

export async function listNetns(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

/** Interface names in the root netns (or in `netns`). */
export async function listLinks(netns?: string): Promise<string[]> {
  const { stdout } = await run('ip', [...(netns ? ['-n', netns] : []), '-o', 'link', 'show']);
  return stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => Boolean(n));
}

/** Pids of the processes inside a netns. */
export async function netnsPids(name: string): Promise<number[]> {
  try {
    const { stdout } = await run('ip', ['netns', 'pids', name]);
    return stdout.split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Mounts bpffs on /sys/fs/bpf when nothing is mounted there (the agents pin under it). */
export async function ensureBpffs(dir: string): Promise<void> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  if (mounts.split('\n').some((l) => l.split(' ')[1] === dir && l.split(' ')[2] === 'bpf')) return;
  try {
    await run('mount', ['-t', 'bpf', 'bpf', dir]);
  } catch (err) {
    throw new NodemeshError('NM_ERR_BPF', `bpffs is not mounted on ${dir} and mounting it failed: ${(err as Error).message}`, { cause: err });
  }
}
