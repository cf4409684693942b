// Original file: control/api/security.proto

import type { PortMtls as _nodemesh_v1_PortMtls, PortMtls__Output as _nodemesh_v1_PortMtls__Output } from '../../nodemesh/v1/PortMtls.js';

export interface WorkloadSecurity {
  /**
   * "namespace/name" (Workload.uid)
   */
  'workload'?: (string);
  /**
   * STRICT | PERMISSIVE | DISABLE, for ports not in port_mtls (UNSET never reaches the
   * agent: it is resolved)
   */
  'mtlsMode'?: (string);
  'portMtls'?: (_nodemesh_v1_PortMtls)[];
  /**
   * "namespace/name" of the PeerAuthentications that decided, mesh -> namespace -> workload
   */
  'peerAuthentications'?: (string)[];
  /**
   * "namespace/name" of the AuthorizationPolicies that apply, sorted
   */
  'authorizationPolicies'?: (string)[];
  /**
   * an enforced (ALLOW/DENY, not dry-run) policy of this workload tests HTTP attributes: the
   * destination proxy parses HTTP
   */
  'http'?: (boolean);
}

export interface WorkloadSecurity__Output {
  /**
   * "namespace/name" (Workload.uid)
   */
  'workload': (string);
  /**
   * STRICT | PERMISSIVE | DISABLE, for ports not in port_mtls (UNSET never reaches the
   * agent: it is resolved)
   */
  'mtlsMode': (string);
  'portMtls': (_nodemesh_v1_PortMtls__Output)[];
  /**
   * "namespace/name" of the PeerAuthentications that decided, mesh -> namespace -> workload
   */
  'peerAuthentications': (string)[];
  /**
   * "namespace/name" of the AuthorizationPolicies that apply, sorted
   */
  'authorizationPolicies': (string)[];
  /**
   * an enforced (ALLOW/DENY, not dry-run) policy of this workload tests HTTP attributes: the
   * destination proxy parses HTTP
   */
  'http': (boolean);
}
