// The lab creates its pods' sandboxes as a container runtime does with a chained CNI
// plugin: once a pod's network (netns, veth, address) is up, the runtime runs the chain's
// next plugin, build/cni/nodemesh-cni, with CNI_COMMAND=ADD and the network configuration
// carrying the previous plugin's result; the pod's programs start only once it succeeded.
// So every lab run with agents exercises the plugin, and a meshed pod's first connect is
// captured (the agent answered only once the netns was enrolled). The lab makes each pod's
// netns only now, after the agents are ready, so nothing but the plugin can have enrolled it.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { packageRoot } from '../../common/paths.js';
import { podPrefixLength } from './lab-plan.js';
import type { LabNodeState, LabPodState, LabState } from './lab-state.js';

const NETNS_DIR = '/run/netns';
export const CNI_PLUGIN = path.join(packageRoot(), 'build', 'cni', 'nodemesh-cni');
const CNI_VERSION = '1.0.0';

/** The agent's CNI socket on a lab node (the agent's default: its state dir). */
export const labCniSocket = (node: LabNodeState) => path.join(node.agentStateDir, 'cni.sock');

/**
 * ADD for one pod whose network (netns, veth, address) the lab just made; rejects naming the
 * pod and the plugin's CNI error.
 */
export async function addPodThroughCni(state: LabState, pod: LabPodState, timeoutMs: number): Promise<void> {
  if (!fs.existsSync(CNI_PLUGIN)) throw new NodemeshError('NM_ERR_LAB', `${CNI_PLUGIN} is missing: run bash scripts/build.sh`);
  const node = state.nodes.find((n) => n.name === pod.node)!;
  await cniCall('ADD', pod, node, timeoutMs);
}

/** What the runtime gives the plugin for a pod: the CNI environment and the network config. */
export function cniInvocation(
  command: 'ADD' | 'DEL' | 'CHECK',
  pod: LabPodState,
  node: LabNodeState,
): { env: NodeJS.ProcessEnv; config: string } {
  const netns = path.join(NETNS_DIR, pod.netns);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: `lab-${pod.netns}`,
    CNI_NETNS: netns,
    CNI_IFNAME: 'eth0',
    CNI_PATH: path.dirname(CNI_PLUGIN),
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=lab-${pod.netns}`,
  };
  const config = {
    cniVersion: CNI_VERSION,
    name: 'nodemesh-lab',
    type: 'nodemesh-cni',
    agentSocket: labCniSocket(node),
    prevResult: {
      cniVersion: CNI_VERSION,
      interfaces: [{ name: 'eth0', sandbox: netns }],
      ips: [{ address: `${pod.ip}/${podPrefixLength(node)}`, gateway: node.podBridgeIp, interface: 0 }],
    },
  };
  return { env, config: JSON.stringify(config) };
}

function cniCall(command: 'ADD' | 'DEL' | 'CHECK', pod: LabPodState, node: LabNodeState, timeoutMs: number): Promise<string> {
  const { env, config } = cniInvocation(command, pod, node);
  return new Promise((resolve, reject) => {
    const child = execFile(CNI_PLUGIN, [], { env, timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout) => {
      if (!err) return resolve(stdout);
      let why = err.message;
      try {
        const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
        why = `CNI error ${e.code}: ${e.msg}${e.details ? ` (${e.details})` : ''}`;
      } catch {
        // not a CNI error object: the process failed some other way
      }
      reject(new NodemeshError('NM_ERR_LAB', `pod ${pod.namespace}/${pod.name}: nodemesh-cni ${command} failed: ${why}`, { cause: err }));
    });
    child.stdin?.end(config);
  });
}
