// Original file: control/api/routing.proto

import type { TrafficPolicy as _nodemesh_v1_TrafficPolicy, TrafficPolicy__Output as _nodemesh_v1_TrafficPolicy__Output } from '../../nodemesh/v1/TrafficPolicy.js';
import type { PortPolicy as _nodemesh_v1_PortPolicy, PortPolicy__Output as _nodemesh_v1_PortPolicy__Output } from '../../nodemesh/v1/PortPolicy.js';

export interface Subset {
  'name'?: (string);
  'labels'?: ({[key: string]: string});
  /**
   * the rule's policy with the subset's overrides applied
   */
  'policy'?: (_nodemesh_v1_TrafficPolicy | null);
  /**
   * per port: rule -> rule's portLevelSettings -> subset -> subset's portLevelSettings (Istio's order)
   */
  'ports'?: (_nodemesh_v1_PortPolicy)[];
}

export interface Subset__Output {
  'name': (string);
  'labels': ({[key: string]: string});
  /**
   * the rule's policy with the subset's overrides applied
   */
  'policy': (_nodemesh_v1_TrafficPolicy__Output | null);
  /**
   * per port: rule -> rule's portLevelSettings -> subset -> subset's portLevelSettings (Istio's order)
   */
  'ports': (_nodemesh_v1_PortPolicy__Output)[];
}
