// The control plane's resource model: what validation produces from one YAML document and
// what the store and the compiler consume. Only the fields nodemesh uses are kept, already
// defaulted (namespace "default", protocol TCP, serviceAccountName "default"...), so the
// compiler never looks at raw YAML.
import type { RoutingBody } from './routing.js';
import type { AuthorizationPolicySpec, PeerAuthenticationSpec } from './security.js';
import type { TelemetrySpec } from './telemetry.js';

/** Identity of a resource: API group (""), kind, namespace ("" when cluster-scoped), name. */
export interface ResourceKey {
  group: string;
  kind: string;
  namespace: string;
  name: string;
}

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface ContainerPort {
  containerPort: number;
  name: string;
  protocol: Protocol;
}

export interface Container {
  name: string;
  ports: ContainerPort[];
  command: string[];
  args: string[];
}

export interface NamespaceSpec {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface NodeSpec {
  labels: Record<string, string>;
  /** status.addresses[].address with type InternalIP (may be empty) */
  internalIps: string[];
}

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';

export interface PodSpec {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  nodeName: string;
  serviceAccountName: string;
  hostNetwork: boolean;
  containers: Container[];
  podIP: string;
  hostIP: string;
  /** undefined when status.phase is absent (the lab may omit it; counts as running) */
  phase: PodPhase | undefined;
  /** metadata.deletionTimestamp is set */
  terminating: boolean;
  /** Istio's workload name: the owning Deployment/StatefulSet/DaemonSet/Job/CronJob, else the pod (api/workload-name.ts) */
  workloadName: string;
}

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';

export interface ServicePortSpec {
  name: string;
  port: number;
  /** a number, an IANA port name, or undefined (= port) */
  targetPort: number | string | undefined;
  protocol: Protocol;
  appProtocol: string;
}

export interface ServiceSpec {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** spec.externalIPs (IPv4) */
  externalIps: string[];
  /** status.loadBalancer.ingress[].ip (IPv4; entries with only a hostname are left out) */
  loadBalancerIps: string[];
  type: ServiceType;
  /** undefined: no selector (no endpoints are computed) */
  selector: Record<string, string> | undefined;
  /** an IPv4 address, "None" (headless), or undefined (allocated by the compiler) */
  clusterIP: string | undefined;
  ports: ServicePortSpec[];
}

export interface DeploymentSpec {
  templateLabels: Record<string, string>;
  containers: Container[];
}

/** One endpoint of an EndpointSlice (discovery.k8s.io/v1), as the compiler uses it. */
export interface SliceEndpoint {
  addresses: string[];
  /** conditions.ready; absent means ready (the API's rule) */
  ready: boolean;
  /** conditions.serving; absent means the same as ready */
  serving: boolean;
  terminating: boolean;
  nodeName: string;
  /** targetRef when it is a Pod: `namespace/name` */
  pod: string;
}

export interface EndpointSliceSpec {
  /** label kubernetes.io/service-name: the Service the slice belongs to ("" when absent) */
  serviceName: string;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  ports: { name: string; port: number; protocol: Protocol; appProtocol: string }[];
  endpoints: SliceEndpoint[];
}

/** The typed body of a resource, by kind. Known-but-ignored kinds carry no body. */
export type ResourceBody =
  | { kind: 'Namespace'; spec: NamespaceSpec }
  | { kind: 'Node'; spec: NodeSpec }
  | { kind: 'Pod'; spec: PodSpec }
  | { kind: 'Service'; spec: ServiceSpec }
  | { kind: 'ServiceAccount' }
  | { kind: 'Deployment'; spec: DeploymentSpec }
  | { kind: 'EndpointSlice'; spec: EndpointSliceSpec }
  | { kind: 'PeerAuthentication'; spec: PeerAuthenticationSpec }
  | { kind: 'AuthorizationPolicy'; spec: AuthorizationPolicySpec }
  | { kind: 'Telemetry'; spec: TelemetrySpec }
  | RoutingBody
  | { kind: 'Ignored' };

/** A validated resource as the store keeps it. */
export interface Resource {
  key: ResourceKey;
  apiVersion: string;
  /** the file it was read from and the 1-based line where its document starts */
  file: string;
  line: number;
  body: ResourceBody;
  /**
   * Shown in the status next to "Accepted": why it is not applied (known kinds nodemesh
   * does not compile yet) or what to check (e.g. an unrecognised mesh annotation value).
   */
  notes: string[];
}

/** What a kind's validator makes of a document: its typed body and the notes for its status. */
export type ValidatedBody = Pick<Resource, 'body' | 'notes'>;

export const CLUSTER_SCOPED_KINDS: ReadonlySet<string> = new Set([
  'Namespace',
  'Node',
  'GatewayClass',
]);

/** A label selector (matchLabels) selects `labels` when every one of its labels is there with its value. */
export function selectsLabels(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** `Service default/web`, or `Namespace foo` for cluster-scoped kinds. */
export function describeKey(k: Pick<ResourceKey, 'kind' | 'namespace' | 'name'>): string {
  return k.namespace ? `${k.kind} ${k.namespace}/${k.name}` : `${k.kind} ${k.name}`;
}

/** A total order key: group, kind, namespace, name. */
export function keyString(k: ResourceKey): string {
  return `${k.group}\u0000${k.kind}\u0000${k.namespace}\u0000${k.name}`;
}

/** The API group of an apiVersion: `apps/v1` → `apps`, `v1` → `` (core). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.lastIndexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}
