// Original file: control/api/discovery.proto

import type { Workload as _nodemesh_v1_Workload, Workload__Output as _nodemesh_v1_Workload__Output } from '../../nodemesh/v1/Workload.js';
import type { Service as _nodemesh_v1_Service, Service__Output as _nodemesh_v1_Service__Output } from '../../nodemesh/v1/Service.js';
import type { RoutingConfig as _nodemesh_v1_RoutingConfig, RoutingConfig__Output as _nodemesh_v1_RoutingConfig__Output } from '../../nodemesh/v1/RoutingConfig.js';
import type { SecurityConfig as _nodemesh_v1_SecurityConfig, SecurityConfig__Output as _nodemesh_v1_SecurityConfig__Output } from '../../nodemesh/v1/SecurityConfig.js';
import type { Node as _nodemesh_v1_Node, Node__Output as _nodemesh_v1_Node__Output } from '../../nodemesh/v1/Node.js';
import type { TelemetryPolicy as _nodemesh_v1_TelemetryPolicy, TelemetryPolicy__Output as _nodemesh_v1_TelemetryPolicy__Output } from '../../nodemesh/v1/TelemetryPolicy.js';
import type { NamespaceInfo as _nodemesh_v1_NamespaceInfo, NamespaceInfo__Output as _nodemesh_v1_NamespaceInfo__Output } from '../../nodemesh/v1/NamespaceInfo.js';
import type { Gateway as _nodemesh_v1_Gateway, Gateway__Output as _nodemesh_v1_Gateway__Output } from '../../nodemesh/v1/Gateway.js';
import type { Long } from '@grpc/proto-loader';

export interface Snapshot {
  /**
   * increases by one each time the compiled content changes; restarts at 1 when the control
   * plane restarts (the agent applies any snapshot that differs from the one it holds)
   */
  'version'?: (number | string | Long);
  /**
   * RFC 3339 time the snapshot was compiled
   */
  'generatedAt'?: (string);
  'workloads'?: (_nodemesh_v1_Workload)[];
  'services'?: (_nodemesh_v1_Service)[];
  'routing'?: (_nodemesh_v1_RoutingConfig | null);
  'security'?: (_nodemesh_v1_SecurityConfig | null);
  /**
   * PEM roots the mesh trusts (several during a root rotation)
   */
  'trustBundle'?: (string)[];
  /**
   * every node that has a workload or a Node object, sorted by name
   */
  'nodes'?: (_nodemesh_v1_Node)[];
  /**
   * Istio Telemetry resources (access logging, tracing), oldest first
   */
  'telemetry'?: (_nodemesh_v1_TelemetryPolicy)[];
  /**
   * every Namespace, sorted by name: what a pod the snapshot does not have yet gets (the
   * CNI plugin asks at sandbox creation, before the pod has an IP and so a Workload)
   */
  'namespaces'?: (_nodemesh_v1_NamespaceInfo)[];
  /**
   * the east-west gateways of the networks known (issue 13), sorted by network then address:
   * a destination whose node is in another network than the agent's is reached through one
   * of its network's gateways ("double HBONE"); empty in a single flat network
   */
  'gateways'?: (_nodemesh_v1_Gateway)[];
  /**
   * the trust domains that are one with this mesh's (issue 13, MeshConfig trustDomainAliases):
   * its own first, then its aliases; empty without aliases. A peer proving the expected
   * identity's path in any of them is that identity
   */
  'trustDomains'?: (string)[];
  /**
   * A delta (only to an agent that asked for them, never the first message of a stream): when
   * base_version is set this message holds what changed since that version, the one sent
   * just before on the same stream. workloads and services are the ones added or changed
   * (whole, by uid / namespace and name), removed_* the keys of those that are gone, and of
   * the other fields only the ones named in `sections` are carried (whole; the rest stay as
   * they were). An agent that does not hold base_version re-opens the stream for a whole one.
   */
  'baseVersion'?: (number | string | Long);
  'removedWorkloads'?: (string)[];
  'removedServices'?: (string)[];
  'sections'?: (string)[];
}

export interface Snapshot__Output {
  /**
   * increases by one each time the compiled content changes; restarts at 1 when the control
   * plane restarts (the agent applies any snapshot that differs from the one it holds)
   */
  'version': (string);
  /**
   * RFC 3339 time the snapshot was compiled
   */
  'generatedAt': (string);
  'workloads': (_nodemesh_v1_Workload__Output)[];
  'services': (_nodemesh_v1_Service__Output)[];
  'routing': (_nodemesh_v1_RoutingConfig__Output | null);
  'security': (_nodemesh_v1_SecurityConfig__Output | null);
  /**
   * PEM roots the mesh trusts (several during a root rotation)
   */
  'trustBundle': (string)[];
  /**
   * every node that has a workload or a Node object, sorted by name
   */
  'nodes': (_nodemesh_v1_Node__Output)[];
  /**
   * Istio Telemetry resources (access logging, tracing), oldest first
   */
  'telemetry': (_nodemesh_v1_TelemetryPolicy__Output)[];
  /**
   * every Namespace, sorted by name: what a pod the snapshot does not have yet gets (the
   * CNI plugin asks at sandbox creation, before the pod has an IP and so a Workload)
   */
  'namespaces': (_nodemesh_v1_NamespaceInfo__Output)[];
  /**
   * the east-west gateways of the networks known (issue 13), sorted by network then address:
   * a destination whose node is in another network than the agent's is reached through one
   * of its network's gateways ("double HBONE"); empty in a single flat network
   */
  'gateways': (_nodemesh_v1_Gateway__Output)[];
  /**
   * the trust domains that are one with this mesh's (issue 13, MeshConfig trustDomainAliases):
   * its own first, then its aliases; empty without aliases. A peer proving the expected
   * identity's path in any of them is that identity
   */
  'trustDomains': (string)[];
  /**
   * A delta (only to an agent that asked for them, never the first message of a stream): when
   * base_version is set this message holds what changed since that version, the one sent
   * just before on the same stream. workloads and services are the ones added or changed
   * (whole, by uid / namespace and name), removed_* the keys of those that are gone, and of
   * the other fields only the ones named in `sections` are carried (whole; the rest stay as
   * they were). An agent that does not hold base_version re-opens the stream for a whole one.
   */
  'baseVersion': (string);
  'removedWorkloads': (string)[];
  'removedServices': (string)[];
  'sections': (string)[];
}
