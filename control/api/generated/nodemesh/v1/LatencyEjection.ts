// Original file: control/api/routing.proto


/**
 * Eject an endpoint whose p99 latency over an interval exceeds `factor` x the median p99 of
 * the cluster's endpoints; endpoints with fewer than `min_requests` requests in the interval
 * are not judged.
 */
export interface LatencyEjection {
  'factor'?: (number | string);
  'minRequests'?: (number);
}

/**
 * Eject an endpoint whose p99 latency over an interval exceeds `factor` x the median p99 of
 * the cluster's endpoints; endpoints with fewer than `min_requests` requests in the interval
 * are not judged.
 */
export interface LatencyEjection__Output {
  'factor': (number);
  'minRequests': (number);
}
