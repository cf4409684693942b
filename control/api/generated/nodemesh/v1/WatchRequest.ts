// Original file: control/api/discovery.proto

import type { Long } from '@grpc/proto-loader';

export interface WatchRequest {
  /**
   * the Kubernetes node name the agent runs on
   */
  'node'?: (string);
  /**
   * last version the agent holds (0 if none); informational, the current one is always sent
   */
  'knownVersion'?: (number | string | Long);
}

export interface WatchRequest__Output {
  /**
   * the Kubernetes node name the agent runs on
   */
  'node': (string);
  /**
   * last version the agent holds (0 if none); informational, the current one is always sent
   */
  'knownVersion': (string);
}
