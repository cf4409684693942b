// Original file: control/api/routing.proto


export interface ConnectionPool {
  'maxConnections'?: (number);
  'connectTimeoutMs'?: (number);
  'tcpIdleTimeoutMs'?: (number);
  'maxConnectionDurationMs'?: (number);
  'http1MaxPendingRequests'?: (number);
  'http2MaxRequests'?: (number);
  /**
   * 0 = unlimited; 1 disables keep-alive
   */
  'maxRequestsPerConnection'?: (number);
  'maxRetries'?: (number);
  'httpIdleTimeoutMs'?: (number);
}

export interface ConnectionPool__Output {
  'maxConnections': (number);
  'connectTimeoutMs': (number);
  'tcpIdleTimeoutMs': (number);
  'maxConnectionDurationMs': (number);
  'http1MaxPendingRequests': (number);
  'http2MaxRequests': (number);
  /**
   * 0 = unlimited; 1 disables keep-alive
   */
  'maxRequestsPerConnection': (number);
  'maxRetries': (number);
  'httpIdleTimeoutMs': (number);
}
