// Original file: control/api/routing.proto


export interface RetryPolicy {
  /**
   * retries after the first try (VirtualService attempts; 0 disables)
   */
  'attempts'?: (number);
  /**
   * 0 = the route timeout
   */
  'perTryTimeoutMs'?: (number);
  /**
   * Envoy retry_on tokens, e.g. 5xx, gateway-error, connect-failure, unavailable
   */
  'retryOn'?: (string)[];
  /**
   * retriable-status-codes (bare integers in retryOn, Gateway API retry.codes)
   */
  'retriableStatusCodes'?: (number)[];
  /**
   * Envoy's base interval (25 ms) and max (10 x base) for full-jitter exponential backoff
   */
  'backoffBaseMs'?: (number);
  'backoffMaxMs'?: (number);
}

export interface RetryPolicy__Output {
  /**
   * retries after the first try (VirtualService attempts; 0 disables)
   */
  'attempts': (number);
  /**
   * 0 = the route timeout
   */
  'perTryTimeoutMs': (number);
  /**
   * Envoy retry_on tokens, e.g. 5xx, gateway-error, connect-failure, unavailable
   */
  'retryOn': (string)[];
  /**
   * retriable-status-codes (bare integers in retryOn, Gateway API retry.codes)
   */
  'retriableStatusCodes': (number)[];
  /**
   * Envoy's base interval (25 ms) and max (10 x base) for full-jitter exponential backoff
   */
  'backoffBaseMs': (number);
  'backoffMaxMs': (number);
}
