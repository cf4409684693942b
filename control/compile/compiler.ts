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
import {
  CLUSTER_DOMAIN,
  CLUSTER_ID_DEFAULT,
  FAIL_MODE_ANNOTATION,
  MESH_ANNOTATION,
  TRUST_DOMAIN_DEFAULT,
  spiffeId,
  type Endpoint,
  type NamespaceInfo,
  type NodeInfo,
  type Service,
  type ServicePort,
  type Snapshot,
  type Workload,
} from '../api/snapshot.js';
import { selectsLabels, type EndpointSliceSpec, type PodSpec, type Resource, type ServiceSpec } from '../model/resources.js';
import { ROOT_NAMESPACE_DEFAULT, type CompileContext } from './context.js';
import { assignLocalities } from './locality.js';
import { compileRoutingReport } from './routing.js';
import { compileSecurity } from './security.js';
import { compileTelemetry } from './telemetry.js';
import { intToIpv4, ipv4ToInt } from '../../common/ip.js';

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
}

export type SnapshotContent = Omit<Snapshot, 'version' | 'generatedAt'>;

/** Fallback range for Services written without a clusterIP. */
export const SERVICE_CIDR = '10.96.0.0/16';
const CIDR_BASE = (10 << 24) | (96 << 16);
const CIDR_SIZE = 1 << 16;
// .0.0 is the network, .0.1 is by convention the `kubernetes` Service, .255.255 broadcast
const FIRST_ALLOCATABLE = 2;
const LAST_ALLOCATABLE = CIDR_SIZE - 2;

interface Pod {
  namespace: string;
  name: string;
  spec: PodSpec;
}

interface Svc {
  namespace: string;
  name: string;
  spec: ServiceSpec;
}

export function compileSnapshot(resources: readonly Resource[], opts: CompileOptions = {}, previous?: Snapshot, now = new Date()): Snapshot {
  const content = compileContent(resources, opts, previous);
  if (previous && contentHash(previous) === contentHash(content)) return previous;
  return { version: (previous?.version ?? 0) + 1, generatedAt: now.toISOString(), ...content };
}

export function compileContent(resources: readonly Resource[], opts: CompileOptions = {}, previous?: Snapshot): SnapshotContent {
  const trustDomain = opts.trustDomain ?? TRUST_DOMAIN_DEFAULT;
  const nsLabels = new Map<string, Record<string, string>>();
  const nsAnnotations = new Map<string, Record<string, string>>();
  const pods: Pod[] = [];
  const svcs: Svc[] = [];
  const nodeIps = new Map<string, string>();
  const nodeLabels = new Map<string, Record<string, string>>();
  const slices = new Map<string, EndpointSliceSpec[]>();
  for (const r of resources) {
    const { namespace, name } = r.key;
    if (r.body.kind === 'Namespace') {
      nsLabels.set(name, r.body.spec.labels);
      nsAnnotations.set(name, r.body.spec.annotations);
    }
    else if (r.body.kind === 'Node') {
      nodeIps.set(name, r.body.spec.internalIps[0] ?? '');
      nodeLabels.set(name, r.body.spec.labels);
    }
    else if (r.body.kind === 'Pod') pods.push({ namespace, name, spec: r.body.spec });
    else if (r.body.kind === 'Service' && r.body.spec.type !== 'ExternalName') svcs.push({ namespace, name, spec: r.body.spec });
    else if (r.body.kind === 'EndpointSlice' && r.body.spec.serviceName && r.body.spec.addressType === 'IPv4') {
      const id = `${namespace}/${r.body.spec.serviceName}`;
      slices.set(id, [...(slices.get(id) ?? []), r.body.spec]);
    }
  }
  pods.sort(byNsName);
  svcs.sort(byNsName);

  const workloads: Workload[] = pods
    .filter((p) => p.spec.podIP !== '' && p.spec.phase !== 'Succeeded' && p.spec.phase !== 'Failed')
    .map((p) => ({
      uid: `${p.namespace}/${p.name}`,
      name: p.name,
      namespace: p.namespace,
      node: p.spec.nodeName,
      ip: p.spec.podIP,
      serviceAccount: p.spec.serviceAccountName,
      labels: { ...p.spec.labels },
      meshed: isMeshed(p.spec, nsLabels.get(p.namespace)),
      spiffeId: spiffeId(trustDomain, p.namespace, p.spec.serviceAccountName),
      failOpen: false, // decided below, once the security config says which pods are STRICT
      workloadName: p.spec.workloadName,
      ...(opts.cluster && opts.cluster !== CLUSTER_ID_DEFAULT ? { cluster: opts.cluster } : {}),
    }));

  const clusterIps = assignClusterIps(svcs, previous);
  const services: Service[] = svcs.map((s) => ({
    name: s.name,
    namespace: s.namespace,
    hostname: `${s.name}.${s.namespace}.svc.${CLUSTER_DOMAIN}`,
    clusterIp: clusterIps.get(`${s.namespace}/${s.name}`) ?? '',
    ports: (opts.endpointsFrom === 'slices' || slices.has(`${s.namespace}/${s.name}`)) ? slicePorts(s, slices.get(`${s.namespace}/${s.name}`) ?? []) : servicePorts(s, pods),
  }));
  const ctx: CompileContext = { workloads, services, trustDomain, rootNamespace: opts.rootNamespace ?? ROOT_NAMESPACE_DEFAULT };
  const routingReport = compileRoutingReport(resources, ctx);
  for (const [resource, notes] of routingReport.notes) opts.notes?.set(resource, [...(opts.notes.get(resource) ?? []), ...notes]);
  const security = compileSecurity(resources, ctx);
  const strict = new Set(security.workloads.filter((w) => w.mtlsMode === 'STRICT' || w.portMtls.some((p) => p.mode === 'STRICT')).map((w) => w.workload));
  for (const w of workloads) w.failOpen = w.meshed && !strict.has(w.uid) && namespaceFailMode(nsAnnotations.get(w.namespace), nsLabels.get(w.namespace)) === 'open';
  const nodes = compileNodes(nodeIps, pods);
  const podLabels = new Map(pods.map((p) => [`${p.namespace}/${p.name}`, p.spec.labels]));
  assignLocalities(nodes, services.flatMap((s) => s.ports.flatMap((p) => p.endpoints)), nodeLabels, podLabels);
  return {
    workloads,
    services,
    nodes,
    namespaces: compileNamespaces(nsLabels, pods),
    routing: routingReport.routing,
    security,
    trustBundle: [...(opts.trustBundle ?? [])],
    telemetry: compileTelemetry(resources),
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
 * Nodes and their proxies' addresses (HBONE peers dial `<node ip>:15008`): the Node's
 * InternalIP, else the status.hostIP of a pod on it (the first by ns/name), else "".
 */
function compileNodes(nodeIps: Map<string, string>, pods: readonly Pod[]): NodeInfo[] {
  const ips = new Map(nodeIps);
  for (const p of pods) {
    if (!p.spec.nodeName) continue;
    if (!ips.get(p.spec.nodeName)) ips.set(p.spec.nodeName, p.spec.hostIP);
  }
  return [...ips].map(([name, ip]) => ({ name, ip })).sort((a, b) => cmp(a.name, b.name));
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

function servicePorts(s: Svc, pods: readonly Pod[]): ServicePort[] {
  const selector = s.spec.selector;
  const ready = selector
    ? pods.filter(
        (p) =>
          p.namespace === s.namespace &&
          p.spec.podIP !== '' &&
          (p.spec.phase === 'Running' || p.spec.phase === undefined) &&
          !p.spec.terminating &&
          selectsLabels(selector, p.spec.labels),
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
function slicePorts(s: Svc, slices: readonly EndpointSliceSpec[]): ServicePort[] {
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
function servicePort(sp: Svc['spec']['ports'][number], endpoints: Endpoint[]): ServicePort {
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


/** IPv4 in numeric order; anything else (IPv6) after, by string. */
function compareIp(a: string, b: string): number {
  const x = ipv4ToInt(a);
  const y = ipv4ToInt(b);
  if (x !== undefined && y !== undefined) return x - y;
  if (x !== undefined) return -1;
  if (y !== undefined) return 1;
  return cmp(a, b);
}

const hashes = new WeakMap<object, string>();

/** sha256 of the content with object keys sorted (version and generatedAt excluded). */
export function contentHash(c: SnapshotContent): string {
  const cached = hashes.get(c);
  if (cached) return cached;
  const { workloads, services, nodes, routing, security, trustBundle, telemetry } = c;
  const h = createHash('sha256').update(stableJson({ workloads, services, nodes, routing, security, trustBundle, telemetry: telemetry ?? [] })).digest('hex');
  hashes.set(c, h);
  return h;
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

function byNsName(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  return cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
