// Original file: control/api/routing.proto

import type { TrafficPolicy as _nodemesh_v1_TrafficPolicy, TrafficPolicy__Output as _nodemesh_v1_TrafficPolicy__Output } from '../../nodemesh/v1/TrafficPolicy.js';

export interface PortPolicy {
  'port'?: (number);
  'policy'?: (_nodemesh_v1_TrafficPolicy | null);
}

export interface PortPolicy__Output {
  'port': (number);
  'policy': (_nodemesh_v1_TrafficPolicy__Output | null);
}
