// Original file: control/api/security.proto

import type { WorkloadSecurity as _nodemesh_v1_WorkloadSecurity, WorkloadSecurity__Output as _nodemesh_v1_WorkloadSecurity__Output } from '../../nodemesh/v1/WorkloadSecurity.js';
import type { AuthorizationPolicy as _nodemesh_v1_AuthorizationPolicy, AuthorizationPolicy__Output as _nodemesh_v1_AuthorizationPolicy__Output } from '../../nodemesh/v1/AuthorizationPolicy.js';

export interface SecurityConfig {
  /**
   * one per workload, sorted by workload uid
   */
  'workloads'?: (_nodemesh_v1_WorkloadSecurity)[];
  /**
   * every AuthorizationPolicy, sorted by namespace/name
   */
  'authorizationPolicies'?: (_nodemesh_v1_AuthorizationPolicy)[];
}

export interface SecurityConfig__Output {
  /**
   * one per workload, sorted by workload uid
   */
  'workloads': (_nodemesh_v1_WorkloadSecurity__Output)[];
  /**
   * every AuthorizationPolicy, sorted by namespace/name
   */
  'authorizationPolicies': (_nodemesh_v1_AuthorizationPolicy__Output)[];
}
