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
  /**
   * The agent takes deltas (snapshot-delta.ts): after the first snapshot of a stream, a new
   * version may come as what changed since the one before. A control plane that does not
   * know the field sends every version whole, which such an agent takes too.
   */
  'deltas'?: (boolean);
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
  /**
   * The agent takes deltas (snapshot-delta.ts): after the first snapshot of a stream, a new
   * version may come as what changed since the one before. A control plane that does not
   * know the field sends every version whole, which such an agent takes too.
   */
  'deltas': (boolean);
}
