// Original file: control/api/routing.proto

import type { LatencyEjection as _nodemesh_v1_LatencyEjection, LatencyEjection__Output as _nodemesh_v1_LatencyEjection__Output } from '../../nodemesh/v1/LatencyEjection.js';

export interface OutlierDetection {
  /**
   * false when the DestinationRule has no outlierDetection
   */
  'enabled'?: (boolean);
  /**
   * 0 disables
   */
  'consecutive5xxErrors'?: (number);
  /**
   * 0 disables (Istio's default)
   */
  'consecutiveGatewayErrors'?: (number);
  'consecutiveLocalOriginFailures'?: (number);
  'splitExternalLocalOriginErrors'?: (boolean);
  'intervalMs'?: (number);
  'baseEjectionTimeMs'?: (number);
  /**
   * Envoy's cap on base_ejection_time x times ejected
   */
  'maxEjectionTimeMs'?: (number);
  'maxEjectionPercent'?: (number | string);
  'minHealthPercent'?: (number | string);
  /**
   * beyond Istio (annotation nodemesh.io/latency-ejection); absent = off (the default)
   */
  'latencyEjection'?: (_nodemesh_v1_LatencyEjection | null);
  '_latencyEjection'?: "latencyEjection";
}

export interface OutlierDetection__Output {
  /**
   * false when the DestinationRule has no outlierDetection
   */
  'enabled': (boolean);
  /**
   * 0 disables
   */
  'consecutive5xxErrors': (number);
  /**
   * 0 disables (Istio's default)
   */
  'consecutiveGatewayErrors': (number);
  'consecutiveLocalOriginFailures': (number);
  'splitExternalLocalOriginErrors': (boolean);
  'intervalMs': (number);
  'baseEjectionTimeMs': (number);
  /**
   * Envoy's cap on base_ejection_time x times ejected
   */
  'maxEjectionTimeMs': (number);
  'maxEjectionPercent': (number);
  'minHealthPercent': (number);
  /**
   * beyond Istio (annotation nodemesh.io/latency-ejection); absent = off (the default)
   */
  'latencyEjection'?: (_nodemesh_v1_LatencyEjection__Output | null);
}
