// Remote clusters in the snapshot (issue 13), as Istio multi-primary does with its remote
// secrets: this control plane also reads the Pods, Services, Nodes and EndpointSlices of each
// remote cluster and merges them into the snapshot of its own cluster.
//
// - Workloads: every remote pod with an IP, carrying its cluster and network. Its uid and its
//   node's name are qualified by the cluster (`<cluster>/<ns>/<name>`, `<cluster>/<node>`):
//   Kubernetes names cannot hold "/", so they never meet a local name, and a remote pod on a
//   node that happens to share the local node's name is never taken for a local one.
// - Addresses: clusters joined by gateways have separate pod CIDRs. A remote pod whose IP a
//   pod of another cluster (the local one first, then the remotes by name) already holds is
//   refused: NM_ERR_CONFIG_CONFLICT in the status, counted, and left out with its endpoints.
//   Nothing else of that cluster is refused for it.
// - Services: one hostname, one service ("namespace sameness": `name.ns.svc.cluster.local` is
//   the same service in every cluster). The endpoints of every cluster that exports it go into
//   the same Service port (matched by port number and protocol); the local definition
//   decides the ports, clusterIP and target ports; a Service only remote takes the first
//   remote's definition (by cluster name), its clusterIP kept if no Service of this cluster
//   holds it, else one is allocated as for a Service written without one.
// - Not exported: a Service annotated `nodemesh.io/cluster-local: "true"` keeps its endpoints
//   in its cluster (Istio's MeshConfig serviceSettings `clusterLocal`, per Service): on a
//   remote Service it is not merged; on a local one, no remote endpoints are merged into it.
//   `networking.istio.io/exportTo: "~"` (visible to no namespace) is not exported either.
//   `networking.istio.io/exportTo: "."` is Istio's namespace visibility, not a cluster
//   boundary: with namespace sameness its own namespace is the same in every cluster, so it
//   is merged (as Istio does).
// - Policies stay per cluster, as in Istio multi-primary: only the local cluster's
//   VirtualServices, DestinationRules, AuthorizationPolicies… apply (a remote cluster's are
//   not read), and security is compiled for the local workloads only: each destination's
//   own node proxy, in its own cluster, enforces its cluster's policies.
// - Gateways: in every cluster, a Service labelled `topology.istio.io/network: NET` with a
//   port 15008 and an address (status.loadBalancer.ingress[].ip, else spec.externalIPs) is
//   the east-west gateway of network NET; its identity is the SPIFFE ID of the ServiceAccount
//   of the pods it selects.
import type { ErrorCode } from '../../common/errors.js';
import { AGENT_PORTS } from '../../common/ports.js';
import { NETWORK_LABEL, spiffeId, type Endpoint, type GatewayInfo, type NodeInfo, type ServicePort, type Workload } from '../api/snapshot.js';
import { type Resource } from '../model/resources.js';
import { byNsName, cmp, compareIp, compileNodes, endpointsOf, inventory, podsWithIp, selectedPods, servicePort, workloadOf, type Inventory, type Svc } from './endpoints.js';
import { assignLocalities } from './locality.js';

/** On a Service: its endpoints stay in its cluster (Istio's serviceSettings clusterLocal). */
export const CLUSTER_LOCAL_ANNOTATION = 'nodemesh.io/cluster-local';
/** Istio's Service visibility by namespace ("*", ".", "~" or namespace names, comma-separated). */
export const EXPORT_TO_ANNOTATION = 'networking.istio.io/exportTo';

/** A remote cluster's resources in force, and where it is. */
export interface RemoteClusterResources {
  name: string;
  /** its network ("" = the one flat network) */
  network: string;
  resources: readonly Resource[];
}

/**
 * Something of a cluster that was left out of the snapshot, for the status: an `error` (bad
 * input: counted, and a file error in the status) or a `warning` (not ready yet, such as a
 * gateway waiting for its LoadBalancer address: in the status only).
 */
export interface ClusterProblem {
  level: 'error' | 'warning';
  cluster: string;
  /** `Pod ns/name` */
  resource: string;
  kind: string;
  file: string;
  line: number;
  code: ErrorCode;
  message: string;
}

/** A Service of one cluster with its endpoints. */
export interface ClusterService {
  svc: Svc;
  ports: ServicePort[];
}

/** What a remote cluster adds to the snapshot, before the merge. */
interface RemoteView {
  cluster: string;
  workloads: Workload[];
  services: ClusterService[];
  nodes: NodeInfo[];
}

/** What the merge gives the compiler. */
export interface MergedClusters {
  /** the remote workloads taken (the local ones are the compiler's) */
  workloads: Workload[];
  /** every Service, local and remote, merged by hostname, sorted by namespace/name */
  services: ClusterService[];
  nodes: NodeInfo[];
  /** per remote cluster: what it added and left out */
  counts: RemoteClusterCounts[];
}

export interface RemoteClusterCounts {
  cluster: string;
  workloads: number;
  services: number;
  /** Services not exported (cluster-local, exportTo "~") */
  notExported: number;
  /** workloads refused (an address another cluster holds) */
  refused: number;
}

/** Is the Service kept in its own cluster (not merged across clusters)? */
export function isClusterLocal(s: Svc): boolean {
  return s.spec.annotations[CLUSTER_LOCAL_ANNOTATION] === 'true';
}

function isExported(s: Svc): boolean {
  if (isClusterLocal(s)) return false;
  const exportTo = s.spec.annotations[EXPORT_TO_ANNOTATION];
  if (exportTo === undefined) return true;
  return !exportTo.split(',').map((e) => e.trim()).every((e) => e === '~');
}

/**
 * Merges the remote clusters into the local cluster's services. `localIps`: the address of
 * every local workload. Problems (refused workloads) are pushed into `problems`.
 */
export function mergeRemoteClusters(
  local: { services: ClusterService[]; workloadIps: Iterable<string> },
  remotes: readonly RemoteClusterResources[],
  opts: { trustDomain: string; endpointsFrom?: 'selectors' | 'slices' },
  problems: ClusterProblem[],
): MergedClusters {
  const owner = new Map<string, string>();
  for (const ip of local.workloadIps) if (!owner.has(ip)) owner.set(ip, '');
  const workloads: Workload[] = [];
  const nodes: NodeInfo[] = [];
  const counts: RemoteClusterCounts[] = [];
  const entries = new Map<string, { svc: Svc; clusterLocal: boolean; ports: { sp: Svc['spec']['ports'][number]; endpoints: Endpoint[] }[] }>();
  for (const cs of local.services) {
    entries.set(`${cs.svc.namespace}/${cs.svc.name}`, {
      svc: cs.svc,
      clusterLocal: isClusterLocal(cs.svc),
      ports: cs.svc.spec.ports.map((sp, i) => ({ sp, endpoints: [...(cs.ports[i]?.endpoints ?? [])] })),
    });
  }
  const localIps = new Set(local.services.map((cs) => cs.svc.spec.clusterIP).filter((ip): ip is string => ip !== undefined && ip !== 'None'));
  const takenIps = new Set(localIps);

  for (const remote of [...remotes].sort((a, b) => cmp(a.name, b.name))) {
    const inv = inventory(remote.resources);
    const view = remoteView(remote, inv, opts);
    const c: RemoteClusterCounts = { cluster: remote.name, workloads: 0, services: 0, notExported: 0, refused: 0 };
    counts.push(c);
    const files = new Map(remote.resources.filter((r) => r.body.kind === 'Pod').map((r) => [`${remote.name}/${r.key.namespace}/${r.key.name}`, r]));
    const refused = new Set<string>();
    for (const w of view.workloads) {
      const held = owner.get(w.ip);
      if (held !== undefined && held !== remote.name) {
        const r = files.get(w.uid);
        const by = held === '' ? 'a pod of this cluster' : `a pod of cluster ${held}`;
        problems.push({
          level: 'error',
          cluster: remote.name,
          kind: 'Pod',
          resource: `Pod ${w.namespace}/${w.name}`,
          file: r?.file ?? '',
          line: r?.line ?? 0,
          code: 'NM_ERR_CONFIG_CONFLICT',
          message: `remote cluster ${remote.name}: its pod IP ${w.ip} is already held by ${by}: clusters joined by gateways need separate pod CIDRs; the pod is left out of the mesh's snapshot`,
        });
        refused.add(w.ip);
        c.refused++;
        continue;
      }
      owner.set(w.ip, remote.name);
      workloads.push(w);
      c.workloads++;
    }
    nodes.push(...view.nodes);
    for (const cs of view.services) {
      if (!isExported(cs.svc)) {
        c.notExported++;
        continue;
      }
      const id = `${cs.svc.namespace}/${cs.svc.name}`;
      let entry = entries.get(id);
      if (entry?.clusterLocal) continue;
      c.services++;
      if (!entry) {
        // only remote so far: the first remote's definition, its clusterIP if still free
        const ip = cs.svc.spec.clusterIP;
        const svc = ip && ip !== 'None' && takenIps.has(ip) ? { ...cs.svc, spec: { ...cs.svc.spec, clusterIP: undefined } } : cs.svc;
        if (ip && ip !== 'None') takenIps.add(ip);
        entry = { svc, clusterLocal: false, ports: svc.spec.ports.map((sp) => ({ sp, endpoints: [] })) };
        entries.set(id, entry);
      }
      cs.svc.spec.ports.forEach((sp, i) => {
        const into = entry.ports.find((p) => p.sp.port === sp.port && p.sp.protocol === sp.protocol);
        const from = cs.ports[i]?.endpoints ?? [];
        into?.endpoints.push(...from.filter((e) => !refused.has(e.ip) && (owner.get(e.ip) ?? remote.name) === remote.name));
      });
    }
  }
  const services = [...entries.values()]
    .map((e) => ({ svc: e.svc, ports: e.ports.map((p) => servicePort(p.sp, p.endpoints)) }))
    .sort((a, b) => byNsName(a.svc, b.svc));
  return { workloads, services, nodes, counts };
}

/** A remote cluster's workloads, Services with their endpoints, and nodes, with names qualified by the cluster. */
function remoteView(remote: RemoteClusterResources, inv: Inventory, opts: { trustDomain: string; endpointsFrom?: 'selectors' | 'slices' }): RemoteView {
  const q = (name: string) => (name ? `${remote.name}/${name}` : '');
  const network = remote.network ? { network: remote.network } : {};
  // fail-open concerns a pod's own node proxy, which is in its own cluster: always false here
  const workloads: Workload[] = podsWithIp(inv.pods).map((p) =>
    workloadOf(p, inv, opts.trustDomain, { uid: q(`${p.namespace}/${p.name}`), node: q(p.spec.nodeName) }, { cluster: remote.name, ...network }),
  );
  const services = inv.svcs.map((svc) => {
    const ports = endpointsOf(svc, inv, opts.endpointsFrom);
    for (const p of ports) for (const e of p.endpoints) Object.assign(e, { workload: q(e.workload), node: q(e.node) });
    return { svc, ports };
  });
  const nodes = compileNodes(inv.nodeIps, inv.pods).map((n) => ({ ...n, name: q(n.name), ...network }));
  const nodeLabels = new Map([...inv.nodeLabels].map(([n, l]) => [q(n), l]));
  const podLabels = new Map(inv.pods.map((p) => [q(`${p.namespace}/${p.name}`), p.spec.labels]));
  assignLocalities(nodes, services.flatMap((s) => s.ports.flatMap((p) => p.endpoints)), nodeLabels, podLabels);
  return { cluster: remote.name, workloads, services, nodes };
}

/**
 * The east-west gateways of one cluster's resources: Services labelled with a network that
 * have port 15008 and an address. A gateway Service whose address or identity is not known
 * yet (no LoadBalancer ingress, no pods) is left out and said in `problems`, as a note.
 */
export function discoverGateways(cluster: string, resources: readonly Resource[], trustDomain: string, problems: ClusterProblem[]): GatewayInfo[] {
  const inv = inventory(resources);
  const out: GatewayInfo[] = [];
  for (const svc of inv.svcs) {
    const network = svc.spec.labels[NETWORK_LABEL];
    if (!network) continue;
    const port = svc.spec.ports.find((p) => p.port === AGENT_PORTS.hbone && p.protocol === 'TCP');
    if (!port) continue;
    const address = svc.spec.loadBalancerIps.find(isIpv4) ?? svc.spec.externalIps.find(isIpv4);
    const selector = svc.spec.selector;
    const pods = selector ? podsWithIp(selectedPods(inv, svc.namespace, selector)) : [];
    const accounts = [...new Set(pods.map((p) => p.spec.serviceAccountName))].sort(cmp);
    const r = resources.find((x) => x.body.kind === 'Service' && x.key.namespace === svc.namespace && x.key.name === svc.name);
    const note = (message: string) =>
      problems.push({ level: 'warning', cluster, kind: 'Service', resource: `Service ${svc.namespace}/${svc.name}`, file: r?.file ?? '', line: r?.line ?? 0, code: 'NM_ERR_CONFIG_FIELD', message });
    if (!address) {
      note(`east-west gateway of network ${network} (cluster ${cluster}) has no address yet (status.loadBalancer.ingress[].ip or spec.externalIPs): its network is unreachable from others until it has one`);
      continue;
    }
    if (accounts.length === 0) {
      note(`east-west gateway of network ${network} (cluster ${cluster}) selects no running pod: its identity (its pods' ServiceAccount) is unknown, so it is not used`);
      continue;
    }
    if (accounts.length > 1) note(`east-west gateway of network ${network} (cluster ${cluster}): its pods run as several ServiceAccounts (${accounts.join(', ')}); ${accounts[0]} is the identity expected`);
    out.push({ network, address, port: port.port, spiffeId: spiffeId(trustDomain, svc.namespace, accounts[0]!), cluster });
  }
  return out;
}

/** Gateways sorted by network, then address (the snapshot's order). */
export function sortGateways(gateways: GatewayInfo[]): GatewayInfo[] {
  return gateways.sort((a, b) => cmp(a.network, b.network) || compareIp(a.address, b.address) || a.port - b.port);
}

function isIpv4(ip: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(ip);
}
