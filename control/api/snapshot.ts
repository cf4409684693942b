// The snapshot an agent consumes: the one internal model. Kubernetes, Istio and Gateway API
// resources are translated into this once, in control/; the agent never parses YAML.
// Mirrors discovery.proto (camelCase, as @grpc/proto-loader gives it with keepCase: false;
// uint64 fields as strings are converted by the helpers below to numbers).
import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import { packagePath } from '../../common/paths.js';
import type { RoutingConfig } from './snapshot-routing.js';
import type { SecurityConfig } from './snapshot-security.js';

export type { RoutingConfig } from './snapshot-routing.js';
export type { SecurityConfig } from './snapshot-security.js';

export interface Endpoint {
  ip: string;
  port: number;
  /** `namespace/name` of the pod */
  workload: string;
  node: string;
}

export interface ServicePort {
  name: string;
  port: number;
  targetPort: number;
  protocol: string;
  appProtocol: string;
  endpoints: Endpoint[];
}

export interface Service {
  name: string;
  namespace: string;
  /** `name.namespace.svc.cluster.local` */
  hostname: string;
  clusterIp: string;
  ports: ServicePort[];
}

export interface Workload {
  /** `namespace/name` */
  uid: string;
  name: string;
  namespace: string;
  node: string;
  ip: string;
  serviceAccount: string;
  labels: Record<string, string>;
  meshed: boolean;
  spiffeId: string;
}

/** A node and the address its node proxy listens on (HBONE, 15008). */
export interface NodeInfo {
  name: string;
  /** status.addresses InternalIP, else a pod's status.hostIP on that node; "" if unknown */
  ip: string;
}

export interface Snapshot {
  version: number;
  generatedAt: string;
  workloads: Workload[];
  services: Service[];
  /** every node that has a workload or a Node object, by name */
  nodes: NodeInfo[];
  routing: RoutingConfig;
  security: SecurityConfig;
  /** PEM roots the mesh trusts (several during a root rotation) */
  trustBundle: string[];
}

export const MESH_ANNOTATION = 'nodemesh.io/mesh';
export const TRUST_DOMAIN_DEFAULT = 'cluster.local';
export const CLUSTER_DOMAIN = 'cluster.local';

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

const PROTO_DIR = packagePath('control', 'api');
const PROTO = path.join(PROTO_DIR, 'discovery.proto');

/** Loads discovery.proto (from the source tree; this file runs from dist/control/api/). */
export function loadDiscoveryProto(): grpc.GrpcObject {
  const def = protoLoader.loadSync(PROTO, {
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    arrays: true,
    objects: true,
    includeDirs: [PROTO_DIR],
  });
  return grpc.loadPackageDefinition(def);
}

/** The Discovery service constructor from the loaded proto. */
export function discoveryService(): grpc.ServiceClientConstructor {
  const pkg = loadDiscoveryProto() as unknown as { nodemesh: { v1: { Discovery: grpc.ServiceClientConstructor } } };
  return pkg.nodemesh.v1.Discovery;
}

/** A snapshot as received over the wire (uint64 as string) → the typed shape. */
export function snapshotFromWire(msg: unknown): Snapshot {
  const m = msg as Omit<Snapshot, 'version'> & { version: string | number };
  return { ...m, version: Number(m.version) };
}
