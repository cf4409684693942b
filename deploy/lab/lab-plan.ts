// Turns the lab model into the complete list of what the lab will create, named and
// addressed: this plan IS the state file's content, written before anything exists.
//
// Addressing (slot s, lab L):
//   lab bridge  nm<s>b in the root netns, 172.31.<240+s>.1/24
//   node i      netns nm-L-<node>, eth0 172.31.<240+s>.<10+i>/24 (root end nm<s>n<i>),
//               pod bridge cbr0 10.244.<i>.1/24
//   pod j       netns nm-L-<ns>-<pod>, eth0 10.244.<i>.<2+k>/24 (k-th pod of node i; node
//               end nm<s>p<j>), default via 10.244.<i>.1
// Pod CIDRs exist only inside the lab's own namespaces, so every lab uses the same ones;
// cluster c of a two-cluster lab uses 10.(244+c).<i>.0/24, as clusters joined by gateways
// must not overlap (lab-multicluster.ts).
// A lab with a node of more than 250 pods (the pods benchmark's 500) widens every node's pod
// CIDR to the /23 or /22 that fits it: node i then takes 10.244.<i×B>.0/(24−log2 B), B /24
// blocks each, its pods counting on from .<i×B>.2 across the blocks. Labs of up to 250 pods
// per node keep the addresses above.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { selectsLabels } from '../../control/model/resources.js';
import type { LabContainer, LabModel, ModelPod } from './lab-model.js';
import type { LabClusterState, LabContainerState, LabNodeState, LabPodState, LabServiceState, LabState } from './lab-state.js';
import { labStateDir } from './lab-state.js';
import { PORTS } from './lab-commands.js';

export const POD_BRIDGE = 'cbr0';
export const BPFFS = '/sys/fs/bpf';
const MAX_NODES = 200;
/** per /24 block of a node's pod CIDR (a /24 keeps its .252–.255 free, as the lab always did) */
const MAX_PODS_PER_BLOCK = 250;
/** the widest pod CIDR a node gets: a /22 */
const MAX_BLOCKS = 4;
const MAX_NETNS_NAME = 64;

export function bridgeSubnet(slot: number): string {
  return `172.31.${240 + slot}`;
}

export function netnsPrefix(lab: string): string {
  return `nm-${lab}-`;
}

export function pinPrefix(lab: string): string {
  return `nodemesh-lab-${lab}-`;
}

/** Root-netns interface names of a slot: nm<s>b, nm<s>n<i>, nm<s>p<j>. */
export function slotLinkPattern(slot: number): RegExp {
  return new RegExp(`^nm${slot}[a-z]\\d*$`);
}

/** `nm-<lab>-<parts>`, with long names cut and made unique by a hash suffix. */
export function netnsName(lab: string, ...parts: string[]): string {
  const full = netnsPrefix(lab) + parts.join('-');
  if (full.length <= MAX_NETNS_NAME) return full;
  return withHash(full, full, MAX_NETNS_NAME);
}

/** `name` cut to `max` characters with a hash of `key` appended: unique and bounded. */
function withHash(name: string, key: string, max: number): string {
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 8);
  return `${name.slice(0, max - 9)}-${hash}`;
}

/**
 * Joining names with '-' can collide (pod a/b-c and pod a-b/c, or node web-client and pod
 * web/client): the second one to claim a name gets a hash of its identity appended.
 */
class NameClaims {
  private readonly used = new Set<string>();
  claim(name: string, identity: string, max = MAX_NETNS_NAME): string {
    const n = this.used.has(name) ? withHash(name, identity, Math.min(max, name.length + 9)) : name;
    this.used.add(n);
    return n;
  }
}

export interface PlanInput {
  name: string;
  slot: number;
  /** `<cgroup2 mount>/nodemesh-lab/<lab>` */
  cgroupRoot: string;
  model: LabModel;
  agents: boolean;
  control: boolean;
  /** the control plane watches the lab's API server stand-in instead of reading configDir */
  kubernetes?: boolean;
  /** one cluster of a two-cluster lab: its pods take 10.(244+index).<node>.0/24 */
  cluster?: LabClusterState;
}

/**
 * The /24 blocks of every node's pod CIDR: 1 (a /24) while no node has more than 250 pods,
 * else 2 (/23) or 4 (/22). Throws when a node has more than a /22 holds or the nodes' CIDRs
 * would not fit in the pod network's /16.
 */
export function podBlocks(model: Pick<LabModel, 'nodes' | 'pods'>): number {
  const perNode = new Map<string, number>();
  for (const p of model.pods) perNode.set(p.spec.nodeName, (perNode.get(p.spec.nodeName) ?? 0) + 1);
  const most = Math.max(0, ...perNode.values());
  let blocks = 1;
  while (most > blocks * 256 - 256 + MAX_PODS_PER_BLOCK && blocks < MAX_BLOCKS) blocks *= 2;
  if (most > blocks * 256 - 256 + MAX_PODS_PER_BLOCK) {
    const node = [...perNode].find(([, n]) => n === most)![0];
    throw new NodemeshError('NM_ERR_LAB', `Node ${node} has ${most} Pods; a lab node holds at most ${MAX_BLOCKS * 256 - 256 + MAX_PODS_PER_BLOCK} (its pod CIDR is at most a /22)`);
  }
  if (model.nodes.length * blocks > 256)
    throw new NodemeshError('NM_ERR_LAB', `${model.nodes.length} Nodes with /${24 - Math.log2(blocks)} pod CIDRs (a Node has more than 250 Pods) do not fit in the lab's pod /16: at most ${256 / blocks} Nodes`);
  return blocks;
}

/** The prefix length of a lab node's pod CIDR (24 unless a node has more than 250 pods). */
export function podPrefixLength(node: Pick<LabNodeState, 'podCidr'>): number {
  return Number(node.podCidr.split('/')[1]);
}

export function planLab(input: PlanInput): LabState {
  const { name, slot, cgroupRoot, model } = input;
  if (model.nodes.length > MAX_NODES) throw new NodemeshError('NM_ERR_LAB', `the lab supports at most ${MAX_NODES} Nodes (got ${model.nodes.length})`);
  const stateDir = labStateDir(name);
  const logDir = path.join(stateDir, 'logs');
  const subnet = bridgeSubnet(slot);
  const bridgeIp = `${subnet}.1`;

  const podNet = `10.${244 + (input.cluster?.index ?? 0)}`;
  const blocks = podBlocks(model);
  const netnsClaims = new NameClaims();
  const cgroupClaims = new NameClaims();
  const nodes: LabNodeState[] = model.nodes.map((n, i) => ({
    name: n.name,
    index: i,
    ip: `${subnet}.${10 + i}`,
    netns: netnsClaims.claim(netnsName(name, n.name), `node/${n.name}`),
    vethRoot: `nm${slot}n${i}`,
    podCidr: `${podNet}.${i * blocks}.0/${24 - Math.log2(blocks)}`,
    podBridge: POD_BRIDGE,
    podBridgeIp: `${podNet}.${i * blocks}.1`,
    podsCgroup: path.join(cgroupRoot, n.name, 'pods'),
    agentCgroup: path.join(cgroupRoot, n.name, 'agent'),
    pinDir: path.join(BPFFS, pinPrefix(name) + n.name),
    netnsDir: path.join(stateDir, 'netns', n.name),
    agentAdmin: `${subnet}.${10 + i}:${PORTS.agentAdmin}`,
    agentLog: path.join(logDir, `agent-${n.name}.log`),
    agentStateDir: path.join(stateDir, 'agents', n.name),
  }));
  const nodeByName = new Map(nodes.map((n) => [n.name, n]));

  const perNode = new Map<string, number>();
  const pods: LabPodState[] = model.pods.map((p, j) => {
    const node = nodeByName.get(p.spec.nodeName)!;
    const k = perNode.get(node.name) ?? 0;
    perNode.set(node.name, k + 1);
    const offset = 2 + k; // .0 the network, .1 the node's bridge
    const ip = `${podNet}.${node.index * blocks + Math.floor(offset / 256)}.${offset % 256}`;
    const netns = netnsClaims.claim(netnsName(name, p.namespace, p.name), `pod/${p.namespace}/${p.name}`);
    return {
      namespace: p.namespace,
      name: p.name,
      node: node.name,
      ip,
      netns,
      vethNode: `nm${slot}p${j}`,
      cgroup: path.join(node.podsCgroup, cgroupClaims.claim(`${p.namespace}-${p.name}`, `${p.namespace}/${p.name}`, 255)),
      etcDir: path.join('/etc/netns', netns),
      containers: p.containers.map((c): LabContainerState => ({
        name: c.name,
        argv: c.argv,
        env: containerEnv(p, c.env, ip, node.ip),
        ports: c.tcpPorts,
        log: path.join(logDir, 'pods', `${p.namespace}_${p.name}_${c.name}.log`),
      })),
    };
  });

  const services: LabServiceState[] = model.services.map((s) => ({
    namespace: s.namespace,
    name: s.name,
    clusterIp: s.clusterIP,
    ports: s.spec.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort ?? p.port, protocol: p.protocol })),
  }));

  return {
    version: 1,
    name,
    status: 'creating',
    slot,
    dir: model.dir,
    createdAt: new Date().toISOString(),
    stateDir,
    configDir: path.join(stateDir, 'config'),
    logDir,
    agents: input.agents,
    control: input.control,
    cgroupRoot,
    bridge: { name: `nm${slot}b`, ip: bridgeIp, cidr: `${subnet}.0/24` },
    controlAddress: input.control
      ? {
          grpc: `${bridgeIp}:${PORTS.grpc}`,
          admin: `${bridgeIp}:${PORTS.controlAdmin}`,
          log: path.join(logDir, 'control.log'),
          cgroup: path.join(cgroupRoot, 'control'),
        }
      : null,
    ...(input.control && input.kubernetes
      ? { apiserver: { kubeconfig: path.join(stateDir, 'kubeconfig'), log: path.join(logDir, 'apiserver.log'), cgroup: path.join(cgroupRoot, 'apiserver') } }
      : {}),
    nodes,
    pods,
    services,
    processes: [],
    ...(input.cluster ? { cluster: input.cluster } : {}),
  };
}

/**
 * The container's env as the pod sees it: its own env (fieldRefs resolved like the
 * downward API) over POD_NAME, POD_NAMESPACE, POD_IP and NODE_NAME, which the lab always
 * sets (a pod has no hostname of its own here: the lab shares the host's UTS namespace).
 */
function containerEnv(p: ModelPod, env: LabContainer['env'], podIp: string, hostIp: string): Record<string, string> {
  const out: Record<string, string> = { POD_NAME: p.name, POD_NAMESPACE: p.namespace, POD_IP: podIp, NODE_NAME: p.spec.nodeName };
  const field: Record<string, string> = {
    'metadata.name': p.name,
    'metadata.namespace': p.namespace,
    'spec.nodeName': p.spec.nodeName,
    'status.podIP': podIp,
    'status.hostIP': hostIp,
    'spec.serviceAccountName': p.spec.serviceAccountName,
  };
  for (const e of env) out[e.name] = e.fieldRef ? field[e.fieldRef]! : e.value ?? '';
  return out;
}

/** The pod's /etc/hosts: localhost, its own name, every Service, headless ones by pod IP. */
export function hostsFile(state: Pick<LabState, 'pods' | 'services'>, pod: LabPodState, model: LabModel): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', `${pod.ip}\t${pod.name}`];
  const podsByKey = new Map(model.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
  for (const s of model.services) {
    const names = [`${s.name}.${s.namespace}.svc.cluster.local`, `${s.name}.${s.namespace}`];
    if (s.namespace === pod.namespace) names.push(s.name);
    const ips =
      s.clusterIP === 'None'
        ? state.pods.filter((p) => p.namespace === s.namespace && s.spec.selector !== undefined && selectsLabels(s.spec.selector, podsByKey.get(`${p.namespace}/${p.name}`)!.spec.labels)).map((p) => p.ip)
        : [s.clusterIP];
    for (const ip of ips) lines.push(`${ip}\t${names.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}
