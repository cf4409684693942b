// The snapshot an agent consumes: the one internal model. Kubernetes, Istio and Gateway API
// resources are translated into this once, in control/; the agent never parses YAML.
//
// discovery.proto (with routing.proto and security.proto) is its one definition, documented
// there. The types here derive from the ones generated from it (generated/, `npm run
// gen:api`), and differ from a decoded message only where the contract decides, once, at the
// boundary (snapshot-check.ts turns a decoded message into these types, or refuses it):
//   - `version` is a uint64, which proto-loader decodes as a decimal string (longs: String);
//     here it is a number: versions are counted up from 1 and compared, and a double holds
//     them exactly up to 2^53, which the check enforces.
//   - fields that hold one of a few words (kinds, modes, actions) are strings in the protos,
//     which keeps the wire readable and open to new words; here they are unions of the
//     known words (the lists in snapshot-routing.ts and snapshot-security.ts), which the
//     check enforces, so that the agent's switches are exhaustive.
//   - a non-optional sub-message decodes as null when unset; here it is always present: the
//     check fills in the ones whose absence has one meaning (no routing, no security, no
//     header operations…) and refuses the rest. An `optional` one arrives absent, never null.
// Scalars, lists and maps are always present (proto-loader `defaults`, `arrays`, `objects`).
import type * as grpc from '@grpc/grpc-js';
import type { Endpoint__Output } from './generated/nodemesh/v1/Endpoint.js';
import type { Node__Output } from './generated/nodemesh/v1/Node.js';
import type { Service__Output } from './generated/nodemesh/v1/Service.js';
import type { ServicePort__Output } from './generated/nodemesh/v1/ServicePort.js';
import type { Snapshot__Output } from './generated/nodemesh/v1/Snapshot.js';
import type { Workload__Output } from './generated/nodemesh/v1/Workload.js';
import type { NamespaceInfo__Output } from './generated/nodemesh/v1/NamespaceInfo.js';
import type { Gateway__Output } from './generated/nodemesh/v1/Gateway.js';
import { loadProto, type Refine } from './protos.js';
import type { RoutingConfig } from './snapshot-routing.js';
import type { SecurityConfig } from './snapshot-security.js';
import type { TelemetryPolicy } from './snapshot-telemetry.js';

export type { RoutingConfig } from './snapshot-routing.js';
export type { SecurityConfig } from './snapshot-security.js';

export type Endpoint = Endpoint__Output;
export type ServicePort = ServicePort__Output;
export type Service = Service__Output;
export type Workload = Workload__Output;
/** A node and the address its node proxy listens on (HBONE, 15008). */
export type NodeInfo = Node__Output;
/** A Namespace's default for pods the snapshot does not have yet (the CNI plugin's ADD). */
export type NamespaceInfo = NamespaceInfo__Output;
/** An east-west gateway into a network (issue 13). */
export type GatewayInfo = Gateway__Output;

export interface Snapshot
  extends Refine<Snapshot__Output, 'version' | 'routing' | 'security' | 'telemetry' | 'gateways' | 'trustDomains' | 'baseVersion' | 'removedWorkloads' | 'removedServices' | 'sections'> {
  /** uint64 on the wire; a safe integer here (see above) */
  version: number;
  routing: RoutingConfig;
  security: SecurityConfig;
  /** Istio Telemetry resources (snapshot-telemetry.ts); absent in snapshots built before them, meaning none */
  telemetry?: TelemetryPolicy[];
  /** east-west gateways of the networks known (issue 13); absent in snapshots built before them, meaning none */
  gateways?: GatewayInfo[];
  /** this mesh's trust domain, then its aliases (issue 13); absent or empty without aliases */
  trustDomains?: string[];
}

export const MESH_ANNOTATION = 'nodemesh.io/mesh';
/** On a Namespace (annotation, else label): `open` or `closed` (the default); see Workload.failOpen. */
export const FAIL_MODE_ANNOTATION = 'nodemesh.io/fail-mode';
export const TRUST_DOMAIN_DEFAULT = 'cluster.local';
export const CLUSTER_DOMAIN = 'cluster.local';
/** Istio's cluster ID when none is configured (metrics' source_cluster/destination_cluster). */
export const CLUSTER_ID_DEFAULT = 'Kubernetes';
/** A cluster name: what Istio accepts as a cluster ID that is also a label value and a DNS label. */
export const CLUSTER_NAME = /^[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,61}[a-zA-Z0-9])?$/;
/** Istio's network label: on a Namespace or Pod it names the network; on a Service, it marks the network's east-west gateway. */
export const NETWORK_LABEL = 'topology.istio.io/network';
/** A network name: a label value (as Istio's topology.istio.io/network). */
export const NETWORK_NAME = /^[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,61}[a-zA-Z0-9])?$/;

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** Loads discovery.proto (from the source tree; this file runs from dist/control/api/). */
export function loadDiscoveryProto(): grpc.GrpcObject {
  return loadProto('discovery.proto');
}

let discovery: grpc.ServiceClientConstructor | undefined;

/** The Discovery service constructor (its `.service` is the server-side definition), loaded once. */
export function discoveryService(): grpc.ServiceClientConstructor {
  if (!discovery) {
    const pkg = loadDiscoveryProto() as unknown as { nodemesh: { v1: { Discovery: grpc.ServiceClientConstructor } } };
    discovery = pkg.nodemesh.v1.Discovery;
  }
  return discovery;
}
