// Original file: control/api/routing.proto

import type { TrafficPolicy as _nodemesh_v1_TrafficPolicy, TrafficPolicy__Output as _nodemesh_v1_TrafficPolicy__Output } from '../../nodemesh/v1/TrafficPolicy.js';
import type { PortPolicy as _nodemesh_v1_PortPolicy, PortPolicy__Output as _nodemesh_v1_PortPolicy__Output } from '../../nodemesh/v1/PortPolicy.js';
import type { Subset as _nodemesh_v1_Subset, Subset__Output as _nodemesh_v1_Subset__Output } from '../../nodemesh/v1/Subset.js';

/**
 * DestinationRule for one host, defaults filled in.
 */
export interface DestinationPolicy {
  'host'?: (string);
  'policy'?: (_nodemesh_v1_TrafficPolicy | null);
  /**
   * portLevelSettings, each already merged over `policy`
   */
  'ports'?: (_nodemesh_v1_PortPolicy)[];
  'subsets'?: (_nodemesh_v1_Subset)[];
  /**
   * e.g. "DestinationRule bookinfo/reviews"
   */
  'source'?: (string);
  /**
   * set: the policy for callers of this namespace only (a DestinationRule exported to some
   * namespaces: Istio's exportTo); absent: for every caller without one of its own
   */
  'consumerNamespace'?: (string);
  '_consumerNamespace'?: "consumerNamespace";
}

/**
 * DestinationRule for one host, defaults filled in.
 */
export interface DestinationPolicy__Output {
  'host': (string);
  'policy': (_nodemesh_v1_TrafficPolicy__Output | null);
  /**
   * portLevelSettings, each already merged over `policy`
   */
  'ports': (_nodemesh_v1_PortPolicy__Output)[];
  'subsets': (_nodemesh_v1_Subset__Output)[];
  /**
   * e.g. "DestinationRule bookinfo/reviews"
   */
  'source': (string);
  /**
   * set: the policy for callers of this namespace only (a DestinationRule exported to some
   * namespaces: Istio's exportTo); absent: for every caller without one of its own
   */
  'consumerNamespace'?: (string);
}
