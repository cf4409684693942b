// Original file: control/api/routing.proto

import type { ConsistentHash as _nodemesh_v1_ConsistentHash, ConsistentHash__Output as _nodemesh_v1_ConsistentHash__Output } from '../../nodemesh/v1/ConsistentHash.js';
import type { LocalityLb as _nodemesh_v1_LocalityLb, LocalityLb__Output as _nodemesh_v1_LocalityLb__Output } from '../../nodemesh/v1/LocalityLb.js';

export interface LoadBalancer {
  /**
   * Istio's simple policies, plus PEAK_EWMA (Linkerd's latency-aware P2C); Istio's unset is
   * LEAST_REQUEST: ROUND_ROBIN | LEAST_REQUEST | RANDOM | PASSTHROUGH | PEAK_EWMA
   */
  'simple'?: (string);
  'consistentHash'?: (_nodemesh_v1_ConsistentHash | null);
  /**
   * Istio's localityLbSetting. Absent: the mesh default, locality failover (which, as in Istio,
   * acts only where outlier detection is on, since only ejections can tell a locality failed)
   */
  'locality'?: (_nodemesh_v1_LocalityLb | null);
  '_consistentHash'?: "consistentHash";
  '_locality'?: "locality";
}

export interface LoadBalancer__Output {
  /**
   * Istio's simple policies, plus PEAK_EWMA (Linkerd's latency-aware P2C); Istio's unset is
   * LEAST_REQUEST: ROUND_ROBIN | LEAST_REQUEST | RANDOM | PASSTHROUGH | PEAK_EWMA
   */
  'simple': (string);
  'consistentHash'?: (_nodemesh_v1_ConsistentHash__Output | null);
  /**
   * Istio's localityLbSetting. Absent: the mesh default, locality failover (which, as in Istio,
   * acts only where outlier detection is on, since only ejections can tell a locality failed)
   */
  'locality'?: (_nodemesh_v1_LocalityLb__Output | null);
}
