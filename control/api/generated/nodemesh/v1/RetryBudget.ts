// Original file: control/api/routing.proto


/**
 * Linkerd's model: retries <= percent of live requests + min_retries_per_second, over ttl.
 */
export interface RetryBudget {
  'percent'?: (number | string);
  'minRetriesPerSecond'?: (number);
  'ttlMs'?: (number);
  /**
   * Istio's retryBudget.minRetryConcurrency: retries in flight that are always allowed
   * whatever the ratio (Envoy's floor). 0 when the DestinationRule has no retryBudget.
   */
  'minRetryConcurrency'?: (number);
}

/**
 * Linkerd's model: retries <= percent of live requests + min_retries_per_second, over ttl.
 */
export interface RetryBudget__Output {
  'percent': (number);
  'minRetriesPerSecond': (number);
  'ttlMs': (number);
  /**
   * Istio's retryBudget.minRetryConcurrency: retries in flight that are always allowed
   * whatever the ratio (Envoy's floor). 0 when the DestinationRule has no retryBudget.
   */
  'minRetryConcurrency': (number);
}
