// Original file: control/api/routing.proto

import type { HttpMatch as _nodemesh_v1_HttpMatch, HttpMatch__Output as _nodemesh_v1_HttpMatch__Output } from '../../nodemesh/v1/HttpMatch.js';
import type { Destination as _nodemesh_v1_Destination, Destination__Output as _nodemesh_v1_Destination__Output } from '../../nodemesh/v1/Destination.js';
import type { Redirect as _nodemesh_v1_Redirect, Redirect__Output as _nodemesh_v1_Redirect__Output } from '../../nodemesh/v1/Redirect.js';
import type { DirectResponse as _nodemesh_v1_DirectResponse, DirectResponse__Output as _nodemesh_v1_DirectResponse__Output } from '../../nodemesh/v1/DirectResponse.js';
import type { Rewrite as _nodemesh_v1_Rewrite, Rewrite__Output as _nodemesh_v1_Rewrite__Output } from '../../nodemesh/v1/Rewrite.js';
import type { RetryPolicy as _nodemesh_v1_RetryPolicy, RetryPolicy__Output as _nodemesh_v1_RetryPolicy__Output } from '../../nodemesh/v1/RetryPolicy.js';
import type { Fault as _nodemesh_v1_Fault, Fault__Output as _nodemesh_v1_Fault__Output } from '../../nodemesh/v1/Fault.js';
import type { Headers as _nodemesh_v1_Headers, Headers__Output as _nodemesh_v1_Headers__Output } from '../../nodemesh/v1/Headers.js';
import type { Mirror as _nodemesh_v1_Mirror, Mirror__Output as _nodemesh_v1_Mirror__Output } from '../../nodemesh/v1/Mirror.js';

export interface HttpRoute {
  /**
   * route name, or "<kind> <ns>/<name> rule <i>": for telemetry and debugging
   */
  'name'?: (string);
  /**
   * OR of AND-blocks; empty = match everything
   */
  'match'?: (_nodemesh_v1_HttpMatch)[];
  /**
   * weighted destinations; empty when the route redirects or answers directly
   */
  'destinations'?: (_nodemesh_v1_Destination)[];
  'redirect'?: (_nodemesh_v1_Redirect | null);
  'directResponse'?: (_nodemesh_v1_DirectResponse | null);
  'rewrite'?: (_nodemesh_v1_Rewrite | null);
  /**
   * whole-request timeout; 0 = none (Istio's default: disabled)
   */
  'timeoutMs'?: (number);
  'retries'?: (_nodemesh_v1_RetryPolicy | null);
  'fault'?: (_nodemesh_v1_Fault | null);
  'headers'?: (_nodemesh_v1_Headers | null);
  'mirrors'?: (_nodemesh_v1_Mirror)[];
  '_redirect'?: "redirect";
  '_directResponse'?: "directResponse";
  '_rewrite'?: "rewrite";
  '_fault'?: "fault";
}

export interface HttpRoute__Output {
  /**
   * route name, or "<kind> <ns>/<name> rule <i>": for telemetry and debugging
   */
  'name': (string);
  /**
   * OR of AND-blocks; empty = match everything
   */
  'match': (_nodemesh_v1_HttpMatch__Output)[];
  /**
   * weighted destinations; empty when the route redirects or answers directly
   */
  'destinations': (_nodemesh_v1_Destination__Output)[];
  'redirect'?: (_nodemesh_v1_Redirect__Output | null);
  'directResponse'?: (_nodemesh_v1_DirectResponse__Output | null);
  'rewrite'?: (_nodemesh_v1_Rewrite__Output | null);
  /**
   * whole-request timeout; 0 = none (Istio's default: disabled)
   */
  'timeoutMs': (number);
  'retries': (_nodemesh_v1_RetryPolicy__Output | null);
  'fault'?: (_nodemesh_v1_Fault__Output | null);
  'headers': (_nodemesh_v1_Headers__Output | null);
  'mirrors': (_nodemesh_v1_Mirror__Output)[];
}
