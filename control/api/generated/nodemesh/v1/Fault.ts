// Original file: control/api/routing.proto

import type { FaultDelay as _nodemesh_v1_FaultDelay, FaultDelay__Output as _nodemesh_v1_FaultDelay__Output } from '../../nodemesh/v1/FaultDelay.js';
import type { FaultAbort as _nodemesh_v1_FaultAbort, FaultAbort__Output as _nodemesh_v1_FaultAbort__Output } from '../../nodemesh/v1/FaultAbort.js';

export interface Fault {
  'delay'?: (_nodemesh_v1_FaultDelay | null);
  'abort'?: (_nodemesh_v1_FaultAbort | null);
  '_delay'?: "delay";
  '_abort'?: "abort";
}

export interface Fault__Output {
  'delay'?: (_nodemesh_v1_FaultDelay__Output | null);
  'abort'?: (_nodemesh_v1_FaultAbort__Output | null);
}
