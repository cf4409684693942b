// Original file: control/api/security.proto

import type { AuthorizationRule as _nodemesh_v1_AuthorizationRule, AuthorizationRule__Output as _nodemesh_v1_AuthorizationRule__Output } from '../../nodemesh/v1/AuthorizationRule.js';

export interface AuthorizationPolicy {
  'namespace'?: (string);
  'name'?: (string);
  /**
   * ALLOW | DENY | AUDIT | CUSTOM
   */
  'action'?: (string);
  /**
   * annotation istio.io/dry-run: evaluated and counted, never enforced
   */
  'dryRun'?: (boolean);
  /**
   * CUSTOM: the extension provider's name (nodemesh skips CUSTOM policies)
   */
  'provider'?: (string);
  /**
   * no rules: the policy never matches (an ALLOW with no rules denies everything)
   */
  'rules'?: (_nodemesh_v1_AuthorizationRule)[];
}

export interface AuthorizationPolicy__Output {
  'namespace': (string);
  'name': (string);
  /**
   * ALLOW | DENY | AUDIT | CUSTOM
   */
  'action': (string);
  /**
   * annotation istio.io/dry-run: evaluated and counted, never enforced
   */
  'dryRun': (boolean);
  /**
   * CUSTOM: the extension provider's name (nodemesh skips CUSTOM policies)
   */
  'provider': (string);
  /**
   * no rules: the policy never matches (an ALLOW with no rules denies everything)
   */
  'rules': (_nodemesh_v1_AuthorizationRule__Output)[];
}
