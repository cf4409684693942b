// Original file: control/api/routing.proto

import type { ConsistentHash as _nodemesh_v1_ConsistentHash, ConsistentHash__Output as _nodemesh_v1_ConsistentHash__Output } from '../../nodemesh/v1/ConsistentHash.js';

export interface LoadBalancer {
  /**
   * Istio's simple policies, plus PEAK_EWMA (Linkerd's latency-aware P2C); Istio's unset is
   * LEAST_REQUEST: ROUND_ROBIN | LEAST_REQUEST | RANDOM | PASSTHROUGH | PEAK_EWMA
   */
  'simple'?: (string);
  'consistentHash'?: (_nodemesh_v1_ConsistentHash | null);
  '_consistentHash'?: "consistentHash";
}

export interface LoadBalancer__Output {
  /**
   * Istio's simple policies, plus PEAK_EWMA (Linkerd's latency-aware P2C); Istio's unset is
   * LEAST_REQUEST: ROUND_ROBIN | LEAST_REQUEST | RANDOM | PASSTHROUGH | PEAK_EWMA
   */
  'simple': (string);
  'consistentHash'?: (_nodemesh_v1_ConsistentHash__Output | null);
}
