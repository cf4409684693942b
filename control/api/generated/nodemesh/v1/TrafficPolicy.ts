// Original file: control/api/routing.proto

import type { LoadBalancer as _nodemesh_v1_LoadBalancer, LoadBalancer__Output as _nodemesh_v1_LoadBalancer__Output } from '../../nodemesh/v1/LoadBalancer.js';
import type { ConnectionPool as _nodemesh_v1_ConnectionPool, ConnectionPool__Output as _nodemesh_v1_ConnectionPool__Output } from '../../nodemesh/v1/ConnectionPool.js';
import type { OutlierDetection as _nodemesh_v1_OutlierDetection, OutlierDetection__Output as _nodemesh_v1_OutlierDetection__Output } from '../../nodemesh/v1/OutlierDetection.js';
import type { RetryBudget as _nodemesh_v1_RetryBudget, RetryBudget__Output as _nodemesh_v1_RetryBudget__Output } from '../../nodemesh/v1/RetryBudget.js';

export interface TrafficPolicy {
  'loadBalancer'?: (_nodemesh_v1_LoadBalancer | null);
  'connectionPool'?: (_nodemesh_v1_ConnectionPool | null);
  'outlierDetection'?: (_nodemesh_v1_OutlierDetection | null);
  'retryBudget'?: (_nodemesh_v1_RetryBudget | null);
}

export interface TrafficPolicy__Output {
  'loadBalancer': (_nodemesh_v1_LoadBalancer__Output | null);
  'connectionPool': (_nodemesh_v1_ConnectionPool__Output | null);
  'outlierDetection': (_nodemesh_v1_OutlierDetection__Output | null);
  'retryBudget': (_nodemesh_v1_RetryBudget__Output | null);
}
