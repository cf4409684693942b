// One cluster's endpoints, as the Kubernetes endpoints controller (or its EndpointSlices)
// gives them: the pods a Service selects, per port, sorted. The compiler computes them for
// the local cluster and for each remote one (multicluster.ts) the same way.
import { MESH_ANNOTATION, NETWORK_LABEL, spiffeId, type Endpoint, type NodeInfo, type ServicePort, type Workload } from '../api/snapshot.js';
import { selectsLabels, type EndpointSliceSpec, type PodSpec, type Resource, type ServiceSpec } from '../model/resources.js';
import { ipv4ToInt } from '../../common/ip.js';

export interface Pod {
  namespace: string;
  name: string;
  spec: PodSpec;
}

export interface Svc {
  namespace: string;
  name: string;
  spec: ServiceSpec;
}

/** What one cluster's resources hold that endpoints, workloads and nodes are computed from. */
export interface Inventory {
  nsLabels: Map<string, Record<string, string>>;
  nsAnnotations: Map<string, Record<string, string>>;
  /** sorted by namespace/name */
  pods: Pod[];
  /** every Service but ExternalName, sorted by namespace/name */
  svcs: Svc[];
  nodeIps: Map<string, string>;
  nodeLabels: Map<string, Record<string, string>>;
  /** IPv4 EndpointSlices by `namespace/service` */
  slices: Map<string, EndpointSliceSpec[]>;
  /** `selectedPods`' index, built on first use: pods (in `pods`' order) by namespace and by `namespace NUL key NUL value` */
  podIndex?: Map<string, Pod[]>;
}

export function inventory(resources: readonly Resource[]): Inventory {
  const inv: Inventory = { nsLabels: new Map(), nsAnnotations: new Map(), pods: [], svcs: [], nodeIps: new Map(), nodeLabels: new Map(), slices: new Map() };
  for (const r of resources) {
    const { namespace, name } = r.key;
    if (r.body.kind === 'Namespace') {
      inv.nsLabels.set(name, r.body.spec.labels);
      inv.nsAnnotations.set(name, r.body.spec.annotations);
    } else if (r.body.kind === 'Node') {
      inv.nodeIps.set(name, r.body.spec.internalIps[0] ?? '');
      inv.nodeLabels.set(name, r.body.spec.labels);
    } else if (r.body.kind === 'Pod') inv.pods.push({ namespace, name, spec: r.body.spec });
    else if (r.body.kind === 'Service' && r.body.spec.type !== 'ExternalName') inv.svcs.push({ namespace, name, spec: r.body.spec });
    else if (r.body.kind === 'EndpointSlice' && r.body.spec.serviceName && r.body.spec.addressType === 'IPv4') {
      const id = `${namespace}/${r.body.spec.serviceName}`;
      inv.slices.set(id, [...(inv.slices.get(id) ?? []), r.body.spec]);
    }
  }
  inv.pods.sort(byNsName);
  inv.svcs.sort(byNsName);
  return inv;
}

/**
 * The pods of `namespace` whose labels match every pair of `selector` (an empty selector
 * matches every pod of the namespace), in `inv.pods`' order. Looked up through the index of
 * one of the selector's pairs instead of a scan of every pod: a Service per workload is the
 * common shape, and a scan made compiling 1,000 Services over 10,000 pods quadratic.
 */
export function selectedPods(inv: Inventory, namespace: string, selector: Readonly<Record<string, string>>): Pod[] {
  let index = inv.podIndex;
  if (!index) {
    index = new Map();
    const add = (key: string, p: Pod) => {
      const list = index!.get(key);
      if (list) list.push(p);
      else index!.set(key, [p]);
    };
    for (const p of inv.pods) {
      add(p.namespace, p);
      for (const k in p.spec.labels) add(`${p.namespace}\0${k}\0${p.spec.labels[k]}`, p);
    }
    inv.podIndex = index;
  }
  let smallest = index.get(namespace) ?? [];
  for (const k in selector) {
    const list = index.get(`${namespace}\0${k}\0${selector[k]}`);
    if (!list) return [];
    if (list.length < smallest.length) smallest = list;
  }
  return smallest.filter((p) => selectsLabels(selector, p.spec.labels));
}

/** Pods that hold an IP: not finished (Succeeded/Failed pods have released theirs). */
export function podsWithIp(pods: readonly Pod[]): Pod[] {
  return pods.filter((p) => p.spec.podIP !== '' && p.spec.phase !== 'Succeeded' && p.spec.phase !== 'Failed');
}

/**
 * A pod as a workload of the snapshot: `uid` and `node` as the cluster names them (a remote
 * cluster qualifies both), `cluster` and `network` written only when known. failOpen is false
 * until the compiler knows which pods are STRICT.
 */
export function workloadOf(p: Pod, inv: Inventory, trustDomain: string, names: { uid: string; node: string }, where: { cluster?: string; network?: string }): Workload {
  const network = podNetwork(p, inv, where.network);
  return {
    uid: names.uid,
    name: p.name,
    namespace: p.namespace,
    node: names.node,
    ip: p.spec.podIP,
    serviceAccount: p.spec.serviceAccountName,
    labels: { ...p.spec.labels },
    meshed: isMeshed(p.spec, inv.nsLabels.get(p.namespace)),
    spiffeId: spiffeId(trustDomain, p.namespace, p.spec.serviceAccountName),
    failOpen: false,
    workloadName: p.spec.workloadName,
    ...(where.cluster ? { cluster: where.cluster } : {}),
    ...(network ? { network } : {}),
  };
}

/**
 * A pod's network: the pod's `topology.istio.io/network` label (Istio: it wins over everything),
 * else its namespace's (the "pod/namespace label" of Istio's DestinationRule docs), else the
 * cluster's network (`--network`, or a remote cluster's: ARCHITECTURE.md "Per-pod networks").
 */
export function podNetwork(p: Pod, inv: Inventory, clusterNetwork: string | undefined): string | undefined {
  return p.spec.labels[NETWORK_LABEL] || inv.nsLabels.get(p.namespace)?.[NETWORK_LABEL] || clusterNetwork || undefined;
}

/** A Service's ports with its endpoints: from its EndpointSlices when it has them (always, with `slices`), else its selector. */
export function endpointsOf(s: Svc, inv: Inventory, endpointsFrom: 'selectors' | 'slices' | undefined): ServicePort[] {
  const id = `${s.namespace}/${s.name}`;
  return endpointsFrom === 'slices' || inv.slices.has(id) ? slicePorts(s, inv.slices.get(id) ?? []) : servicePorts(s, inv);
}

/**
 * Nodes and their proxies' addresses (HBONE peers dial `<node ip>:15008`): the Node's
 * InternalIP, else the status.hostIP of a pod on it (the first by ns/name), else "".
 */
export function compileNodes(nodeIps: Map<string, string>, pods: readonly Pod[]): NodeInfo[] {
  const ips = new Map(nodeIps);
  for (const p of pods) {
    if (!p.spec.nodeName) continue;
    if (!ips.get(p.spec.nodeName)) ips.set(p.spec.nodeName, p.spec.hostIP);
  }
  return [...ips].map(([name, ip]) => ({ name, ip })).sort((a, b) => cmp(a.name, b.name));
}

/**
 * "enabled"/"disabled" on the pod (annotation, else label, as Istio reads
 * `istio.io/dataplane-mode` from either) wins; otherwise the namespace label must say
 * "enabled".
 */
export function isMeshed(pod: PodSpec, namespaceLabels: Record<string, string> | undefined): boolean {
  if (pod.hostNetwork) return false;
  const own = pod.annotations[MESH_ANNOTATION] ?? pod.labels[MESH_ANNOTATION];
  if (own === 'enabled') return true;
  if (own === 'disabled') return false;
  return namespaceLabels?.[MESH_ANNOTATION] === 'enabled';
}


export function servicePorts(s: Svc, inv: Inventory): ServicePort[] {
  const selector = s.spec.selector;
  const ready = selector
    ? selectedPods(inv, s.namespace, selector).filter(
        (p) => p.spec.podIP !== '' && (p.spec.phase === 'Running' || p.spec.phase === undefined) && !p.spec.terminating,
      )
    : [];
  return s.spec.ports.map((sp) => {
    const endpoints: Endpoint[] = [];
    for (const p of ready) {
      const port = resolveTargetPort(sp.targetPort ?? sp.port, sp.protocol, p.spec);
      if (port !== undefined) endpoints.push({ ip: p.spec.podIP, port, workload: `${p.namespace}/${p.name}`, node: p.spec.nodeName });
    }
    return servicePort(sp, endpoints);
  });
}

/** The Service's ports with the endpoints its EndpointSlices list (see the head of this file). */
export function slicePorts(s: Svc, slices: readonly EndpointSliceSpec[]): ServicePort[] {
  return s.spec.ports.map((sp) => {
    const ready: Endpoint[] = [];
    const draining: Endpoint[] = [];
    const seen = new Set<string>();
    for (const slice of slices) {
      const port = slice.ports.find((p) => p.name === sp.name && p.protocol === sp.protocol);
      if (!port) continue;
      for (const e of slice.endpoints) {
        const into = e.ready ? ready : e.serving && e.terminating ? draining : undefined;
        if (!into) continue;
        for (const ip of e.addresses) {
          const id = `${ip}:${port.port}`;
          if (seen.has(id)) continue; // the same endpoint in two slices while the controller moves it
          seen.add(id);
          into.push({ ip, port: port.port, workload: e.pod, node: e.nodeName });
        }
      }
    }
    return servicePort(sp, ready.length ? ready : draining);
  });
}

/** A Service port with its endpoints (sorted), whichever way they were found. */
export function servicePort(sp: Svc['spec']['ports'][number], endpoints: Endpoint[]): ServicePort {
  endpoints.sort((a, b) => compareIp(a.ip, b.ip) || a.port - b.port || cmp(a.workload, b.workload));
  let targetPort: number;
  if (typeof sp.targetPort === 'string') {
    // named: the number the endpoints agree on, 0 when they differ or there are none
    const distinct = new Set(endpoints.map((e) => e.port));
    targetPort = distinct.size === 1 ? endpoints[0]!.port : 0;
  } else {
    targetPort = sp.targetPort ?? sp.port;
  }
  return { name: sp.name, port: sp.port, targetPort, protocol: sp.protocol, appProtocol: sp.appProtocol, endpoints };
}

/** A number is used as is; a name is looked up in the pod's container ports (name and protocol). */
export function resolveTargetPort(target: number | string, protocol: string, pod: PodSpec): number | undefined {
  if (typeof target === 'number') return target;
  for (const c of pod.containers) {
    for (const p of c.ports) if (p.name === target && p.protocol === protocol) return p.containerPort;
  }
  return undefined;
}


/** IPv4 in numeric order; anything else (IPv6) after, by string. */
export function compareIp(a: string, b: string): number {
  const x = ipv4ToInt(a);
  const y = ipv4ToInt(b);
  if (x !== undefined && y !== undefined) return x - y;
  if (x !== undefined) return -1;
  if (y !== undefined) return 1;
  return cmp(a, b);
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function byNsName(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  return cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
}
