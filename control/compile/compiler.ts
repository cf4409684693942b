// The compiler: resources in force → the Snapshot agents consume. Pure: the same resources
// and the same previous snapshot give the same result (time aside), with every list sorted.
//
// - workloads: every Pod with status.podIP that has not finished (phase Succeeded/Failed
//   pods have released their IP). `meshed`: pod annotation nodemesh.io/mesh `enabled` /
//   `disabled` wins; otherwise the pod's Namespace label nodemesh.io/mesh = `enabled`.
//   hostNetwork pods are never meshed (enrolling them would capture the node's traffic).
//   `failOpen`: a meshed pod whose Namespace says nodemesh.io/fail-mode: open (annotation,
//   else label) and that is STRICT on no port: while its node proxy is down its new
//   connections bypass the proxy (the eBPF programs check the proxy's heartbeat) instead of
//   being refused. STRICT always fails closed: a plaintext bypass is what STRICT forbids.
// - services: every Service but ExternalName; endpoints as the Kubernetes endpoints
//   controller computes them: pods of the same namespace matching the selector, with an
//   IP, Running (or no phase written), not terminating; a named targetPort is looked up per
//   pod in its containers' ports (same name and protocol), pods without it are skipped for
//   that port. Headless Services carry clusterIp "". When EndpointSlices name the Service
//   (label kubernetes.io/service-name) — always, from a cluster (`endpointsFrom: 'slices'`),
//   or when a file carries them — the endpoints are theirs instead, as kube-proxy and istiod
//   read them: so Services without selectors, and what the cluster's controller decided,
//   hold. Ready endpoints; when a port has none, its serving terminating ones (kube-proxy's
//   fallback, so a rollout's last pods still answer while they drain). IPv4 slices only.
// - nodes: name and proxy address (InternalIP, else a pod's hostIP), for HBONE peers.
// - localities of nodes and endpoints, where topology labels give one (locality.ts).
// - version: previous + 1 when the content (everything but version/generatedAt) changed;
//   otherwise the previous snapshot is returned as is.
import { createHash } from 'node:crypto';
import { compareServices, compareWorkloads, sameContent } from '../api/snapshot-delta.js';
import {
  CLUSTER_DOMAIN,
  CLUSTER_ID_DEFAULT,
  FAIL_MODE_ANNOTATION,
  MESH_ANNOTATION,
  TRUST_DOMAIN_DEFAULT,
  type NamespaceInfo,
  type Service,
  type Snapshot,
  type Workload,
} from '../api/snapshot.js';
import type { Resource } from '../model/resources.js';
import { ROOT_NAMESPACE_DEFAULT, type CompileContext } from './context.js';
import { assignLocalities } from './locality.js';
import { compileRoutingReport } from './routing.js';
import { compileSecurity } from './security.js';
import { compileTelemetry } from './telemetry.js';
import { intToIpv4, ipv4ToInt } from '../../common/ip.js';
import { cmp, compileNodes, endpointsOf, inventory, isMeshed, podsWithIp, workloadOf, type Pod, type Svc } from './endpoints.js';
import { serviceExportTo } from './visibility.js';
import { trustDomainList } from './trust-domains.js';
import { discoverGateways, mergeRemoteClusters, sortGateways, type ClusterProblem, type RemoteClusterCounts, type RemoteClusterResources } from './multicluster.js';

export { isMeshed, resolveTargetPort } from './endpoints.js';

export interface CompileOptions {
  /** SPIFFE trust domain (default cluster.local) */
  trustDomain?: string;
  /** the cluster's name (Istio's cluster ID); written on every workload unless it is the default */
  cluster?: string;
  /** Istio's root namespace: mesh-wide policies live there (default istio-system) */
  rootNamespace?: string;
  /** PEM roots the mesh trusts, from the CA (several during a rotation) */
  trustBundle?: readonly string[];
  /**
   * Filled with what compiling found worth telling about a resource that was accepted
   * (`VirtualService ns/name` → notes: a host that is no Service, an undefined subset…),
   * for its status.
   */
  notes?: Map<string, string[]>;
  /**
   * `selectors` (default): EndpointSlices where a Service has them, else the selector over
   * the pods (files, the lab). `slices`: only EndpointSlices (a cluster, where the
   * EndpointSlice controller writes them; a Service without any has no endpoints yet).
   */
  endpointsFrom?: 'selectors' | 'slices';
  /** this cluster's network (Istio's topology.istio.io/network); "" or absent: one flat network */
  network?: string;
  /** trust domains that are one with trustDomain (MeshConfig trustDomainAliases): trust-domains.ts */
  trustDomainAliases?: readonly string[];
  /** remote clusters' resources (`--remote-cluster`): merged in as multicluster.ts says */
  remotes?: readonly RemoteClusterResources[];
  /** filled with what of the clusters was left out (a remote pod's address taken, a gateway without address) */
  problems?: ClusterProblem[];
  /** filled with what each remote cluster added */
  remoteCounts?: RemoteClusterCounts[];
}

export type SnapshotContent = Omit<Snapshot, 'version' | 'generatedAt'>;

/** Fallback range for Services written without a clusterIP. */
export const SERVICE_CIDR = '10.96.0.0/16';
const CIDR_BASE = (10 << 24) | (96 << 16);
const CIDR_SIZE = 1 << 16;
// .0.0 is the network, .0.1 is by convention the `kubernetes` Service, .255.255 broadcast
const FIRST_ALLOCATABLE = 2;
const LAST_ALLOCATABLE = CIDR_SIZE - 2;

export function compileSnapshot(resources: readonly Resource[], opts: CompileOptions = {}, previous?: Snapshot, now = new Date()): Snapshot {
  const content = compileContent(resources, opts, previous);
  if (previous && sameContent(previous, content)) return previous;
  return { version: (previous?.version ?? 0) + 1, generatedAt: now.toISOString(), ...content };
}

export function compileContent(resources: readonly Resource[], opts: CompileOptions = {}, previous?: Snapshot): SnapshotContent {
  const trustDomain = opts.trustDomain ?? TRUST_DOMAIN_DEFAULT;
  const inv = inventory(resources);
  const { nsLabels, nsAnnotations, pods, svcs, nodeIps, nodeLabels } = inv;
  const network = opts.network ? { network: opts.network } : {};

  // failOpen is decided below, once the security config says which pods are STRICT
  const where = { ...(opts.cluster && opts.cluster !== CLUSTER_ID_DEFAULT ? { cluster: opts.cluster } : {}), ...network };
  const workloads: Workload[] = podsWithIp(pods).map((p) => workloadOf(p, inv, trustDomain, { uid: `${p.namespace}/${p.name}`, node: p.spec.nodeName }, where));

  const localServices = svcs.map((svc) => ({ svc, ports: endpointsOf(svc, inv, opts.endpointsFrom) }));
  const nodes = compileNodes(nodeIps, pods).map((n) => ({ ...n, ...network }));
  const podLabels = new Map(pods.map((p) => [`${p.namespace}/${p.name}`, p.spec.labels]));
  assignLocalities(nodes, localServices.flatMap((s) => s.ports.flatMap((p) => p.endpoints)), nodeLabels, podLabels);
  // remote clusters (multicluster.ts): their workloads, nodes and endpoints, merged by hostname
  const remotes = opts.remotes ?? [];
  const problems = opts.problems ?? [];
  const merged = remotes.length
    ? mergeRemoteClusters({ services: localServices, workloadIps: workloads.map((w) => w.ip) }, remotes, { trustDomain, ...(opts.endpointsFrom ? { endpointsFrom: opts.endpointsFrom } : {}) }, problems)
    : undefined;
  if (merged && opts.remoteCounts) opts.remoteCounts.push(...merged.counts);
  const clusterServices = merged?.services ?? localServices;
  const clusterIps = assignClusterIps(clusterServices.map((cs) => cs.svc), previous);
  const services: Service[] = clusterServices.map(({ svc: s, ports }) => {
    const exportTo = serviceExportTo(s);
    return {
      name: s.name,
      namespace: s.namespace,
      hostname: `${s.name}.${s.namespace}.svc.${CLUSTER_DOMAIN}`,
      clusterIp: clusterIps.get(`${s.namespace}/${s.name}`) ?? '',
      ports,
      ...(exportTo !== undefined ? { exportTo } : {}),
    };
  });
  const gateways = sortGateways([
    ...(opts.network ? discoverGateways(opts.cluster ?? CLUSTER_ID_DEFAULT, resources, trustDomain, problems) : []),
    ...remotes.flatMap((r) => discoverGateways(r.name, r.resources, trustDomain, problems)),
  ]);
  // security is compiled for this cluster's workloads only: policies stay per cluster
  const trustDomains = trustDomainList(trustDomain, opts.trustDomainAliases ?? []);
  const ctx: CompileContext = { workloads, services, trustDomain, rootNamespace: opts.rootNamespace ?? ROOT_NAMESPACE_DEFAULT, trustDomains };
  const routingReport = compileRoutingReport(resources, ctx);
  for (const [resource, notes] of routingReport.notes) opts.notes?.set(resource, [...(opts.notes.get(resource) ?? []), ...notes]);
  const security = compileSecurity(resources, ctx);
  const strict = new Set(security.workloads.filter((w) => w.mtlsMode === 'STRICT' || w.portMtls.some((p) => p.mode === 'STRICT')).map((w) => w.workload));
  for (const w of workloads) w.failOpen = w.meshed && !strict.has(w.uid) && namespaceFailMode(nsAnnotations.get(w.namespace), nsLabels.get(w.namespace)) === 'open';
  return {
    // in the order deltas keep (api/snapshot-delta.ts)
    workloads: (merged ? [...workloads, ...merged.workloads] : workloads).sort(compareWorkloads),
    services: services.sort(compareServices),
    nodes: merged ? [...nodes, ...merged.nodes] : nodes,
    namespaces: compileNamespaces(nsLabels, pods),
    routing: routingReport.routing,
    security,
    trustBundle: [...(opts.trustBundle ?? [])],
    telemetry: compileTelemetry(resources),
    gateways,
    // empty without aliases: nothing on the wire, the same content hash as before them
    trustDomains,
  };
}

/**
 * What a namespace does while its node proxy is down: `open` or `closed`, from the
 * annotation, else the label (either is how an operator marks a namespace); anything else,
 * or nothing, is `closed` (the validator says so in the Namespace's status).
 */
export function namespaceFailMode(annotations: Record<string, string> | undefined, labels: Record<string, string> | undefined): 'open' | 'closed' {
  const v = annotations?.[FAIL_MODE_ANNOTATION] ?? labels?.[FAIL_MODE_ANNOTATION];
  return v === 'open' ? 'open' : 'closed';
}

/**
 * Each Namespace's default, and its pods without an IP yet (being created) that differ from
 * it: what the agent answers the CNI plugin for a pod that is not a Workload yet.
 */
function compileNamespaces(nsLabels: Map<string, Record<string, string>>, pods: readonly Pod[]): NamespaceInfo[] {
  return [...nsLabels]
    .map(([name, labels]) => {
      const meshed = labels[MESH_ANNOTATION] === 'enabled';
      const pendingExceptions = pods.filter((p) => p.namespace === name && p.spec.podIP === '' && isMeshed(p.spec, labels) !== meshed).map((p) => p.name);
      return { name, meshed, pendingExceptions };
    })
    .sort((a, b) => cmp(a.name, b.name));
}

/**
 * clusterIP per `ns/name`. Written addresses are kept; "None" gives "". A Service written
 * without one keeps the address it had in the previous snapshot if still free, else gets
 * one from SERVICE_CIDR picked by a hash of its name (stable across restarts too), probing
 * past addresses in use.
 */
function assignClusterIps(svcs: readonly Svc[], previous: Snapshot | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const used = new Set<string>();
  const pending: Svc[] = [];
  for (const s of svcs) {
    const id = `${s.namespace}/${s.name}`;
    if (s.spec.clusterIP === 'None') out.set(id, '');
    else if (s.spec.clusterIP !== undefined) {
      out.set(id, s.spec.clusterIP);
      used.add(s.spec.clusterIP);
    } else pending.push(s);
  }
  const before = new Map(previous?.services.map((s) => [`${s.namespace}/${s.name}`, s.clusterIp]) ?? []);
  const rest: Svc[] = [];
  for (const s of pending) {
    const id = `${s.namespace}/${s.name}`;
    const ip = before.get(id);
    if (ip && inCidr(ip) && !used.has(ip)) {
      out.set(id, ip);
      used.add(ip);
    } else rest.push(s);
  }
  const span = LAST_ALLOCATABLE - FIRST_ALLOCATABLE + 1;
  for (const s of rest) {
    const id = `${s.namespace}/${s.name}`;
    const start = createHash('sha256').update(id).digest().readUInt32BE(0) % span;
    for (let i = 0; i < span; i++) {
      const ip = intToIpv4(CIDR_BASE + FIRST_ALLOCATABLE + ((start + i) % span));
      if (!used.has(ip)) {
        out.set(id, ip);
        used.add(ip);
        break;
      }
    }
  }
  return out;
}

function inCidr(ip: string): boolean {
  const n = ipv4ToInt(ip);
  return n !== undefined && n - CIDR_BASE >= FIRST_ALLOCATABLE && n - CIDR_BASE <= LAST_ALLOCATABLE;
}
