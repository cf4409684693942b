// The east-west gateway of one cluster of a two-cluster lab, as Istio's multicluster
// install makes it: a Service labelled `topology.istio.io/network` with port 15008
// (`istio-eastwestgateway`, type LoadBalancer) and the pod it selects. What the lab stands
// in for:
//   - the cloud's LoadBalancer: the lab gives the Service an address on the cluster's node
//     subnet (<subnet>.200 + k, as MetalLB's L2 mode would) and writes it into
//     status.loadBalancer.ingress[0].ip; the address sits on the gateway pod's second
//     interface `lb0` (a veth to the cluster's bridge), so what reaches the address reaches
//     the pod, as a LoadBalancer with externalTrafficPolicy Local would;
//   - the gateway image: the pod runs `nodemesh agent --gateway` (lab-commands.ts) in place
//     of its container's command, with the credential of the node it runs on.
// The gateway reaches its own cluster's node proxies and control plane over `lb0` (the node
// subnet), and answers the other networks through the WAN router (lab-wan.ts).
import path from 'node:path';
import { ConfigError } from '../../common/errors.js';
import { AGENT_PORTS } from '../../common/ports.js';
import { NETWORK_LABEL } from '../../control/api/snapshot.js';
import { selectsLabels } from '../../control/model/resources.js';
import { AGENT_ENV } from './lab-agents.js';
import { gatewayArgv } from './lab-commands.js';
import { labNodeCredentialDir, labTrustBundleFile } from './lab-credentials.js';
import type { LabModel, ModelPod, ModelService } from './lab-model.js';
import { ipBatch } from './lab-network.js';
import type { LabGatewayState, LabPodState, LabState } from './lab-state.js';

/** the first LoadBalancer address on a cluster's node subnet */
const FIRST_LB_HOST = 200;

export interface ModelGateway {
  service: ModelService;
  pod: ModelPod;
  network: string;
}

/** The gateway Services of a cluster's model, each with the one pod it selects. */
export function findGateways(model: LabModel): ModelGateway[] {
  const out: ModelGateway[] = [];
  for (const s of model.services) {
    const network = s.spec.labels[NETWORK_LABEL];
    if (!network || !s.spec.ports.some((p) => p.port === AGENT_PORTS.hbone && p.protocol === 'TCP')) continue;
    const where = { file: s.file, line: s.line, resource: `Service ${s.namespace}/${s.name}` };
    const selector = s.spec.selector;
    const pods = selector ? model.pods.filter((p) => p.namespace === s.namespace && selectsLabels(selector, p.spec.labels)) : [];
    if (pods.length !== 1) {
      throw new ConfigError('NM_ERR_CONFIG_FIELD', { ...where, field: 'spec.selector' }, `an east-west gateway Service of the lab selects exactly one Pod (the lab's LoadBalancer stand-in forwards to one), not ${pods.length}${pods.length ? `: ${pods.map((p) => p.name).join(', ')}` : ''}`);
    }
    out.push({ service: s, pod: pods[0]!, network });
  }
  return out;
}

/**
 * The cluster's network: the `topology.istio.io/network` of its gateway Services (Istio
 * labels the gateway and the system namespace alike). A cluster of a two-cluster lab
 * needs one: its network is reachable from the other only through it.
 */
export function clusterNetwork(cluster: string, model: LabModel, gateways: ModelGateway[]): string {
  const networks = [...new Set(gateways.map((g) => g.network))];
  if (networks.length === 1) return networks[0]!;
  const where = { file: model.dir, resource: `cluster ${cluster}` };
  if (networks.length === 0) {
    throw new ConfigError('NM_ERR_CONFIG_FIELD', where, `no east-west gateway: add a Service labelled ${NETWORK_LABEL}: NETWORK with port ${AGENT_PORTS.hbone} (type LoadBalancer) and the Pod it selects; the other cluster reaches this one only through it`);
  }
  throw new ConfigError('NM_ERR_CONFIG_FIELD', where, `gateway Services name several networks (${networks.join(', ')}): the lab makes one network per cluster`);
}

/**
 * Gives each gateway its LoadBalancer address and makes its pod run the gateway mode
 * (mutates the planned state: called before it is written).
 */
export function planGateways(state: LabState, gateways: ModelGateway[], cli: string): void {
  const cluster = state.cluster!;
  const subnet = state.bridge!.ip.slice(0, state.bridge!.ip.lastIndexOf('.'));
  cluster.gateways = gateways.map((g, k): LabGatewayState => {
    const pod = state.pods.find((p) => p.namespace === g.pod.namespace && p.name === g.pod.name)!;
    const address = `${subnet}.${FIRST_LB_HOST + k}`;
    const stateDir = path.join(state.stateDir, 'gateways', `${g.service.namespace}-${g.service.name}`);
    const first = pod.containers[0]!;
    // the image's entrypoint in a real cluster; here the pod's one process
    pod.containers = [
      {
        name: first.name,
        argv: gatewayArgv(cli, {
          node: pod.node,
          control: state.controlAddress!.grpc,
          address,
          rootCert: labTrustBundleFile(state.stateDir),
          nodeCredential: labNodeCredentialDir(state.stateDir, pod.node),
          stateDir,
        }),
        // the agent's allocator, as the gateway's Deployment (eastwestgateway.yaml) and the lab's agents
        env: { ...AGENT_ENV, ...first.env, NODEMESH_WORKERS: '1' },
        ports: [],
        log: first.log,
      },
    ];
    return {
      namespace: g.service.namespace,
      service: g.service.name,
      pod: pod.name,
      node: pod.node,
      address,
      vethRoot: `nm${state.slot}g${k}`,
      admin: `${address}:${AGENT_PORTS.admin}`,
      log: first.log,
      stateDir,
    };
  });
}

/**
 * The gateway pod's `lb0`: a veth to the cluster's bridge holding the LoadBalancer address,
 * and the routes back to the other networks' nodes through the WAN router.
 */
export async function createGatewayLink(state: LabState, gw: LabGatewayState, pod: LabPodState): Promise<void> {
  const cluster = state.cluster!;
  await ipBatch(undefined, [`link add ${gw.vethRoot} type veth peer name lb0 netns ${pod.netns}`, `link set ${gw.vethRoot} master ${state.bridge!.name} up`]);
  await ipBatch(pod.netns, [
    `addr add ${gw.address}/24 dev lb0`,
    'link set lb0 up',
    ...cluster.remoteSubnets.map((s) => `route add ${s} via ${cluster.wanIp} dev lb0`),
  ]);
}

/** The gateway Service's address as the LoadBalancer controller writes it (lab-config-dir.ts). */
export function gatewayAddressOf(state: LabState, namespace: string, service: string): string | undefined {
  return state.cluster?.gateways.find((g) => g.namespace === namespace && g.service === service)?.address;
}
