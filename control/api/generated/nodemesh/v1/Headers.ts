// Original file: control/api/routing.proto

import type { HeaderOps as _nodemesh_v1_HeaderOps, HeaderOps__Output as _nodemesh_v1_HeaderOps__Output } from '../../nodemesh/v1/HeaderOps.js';

export interface Headers {
  'request'?: (_nodemesh_v1_HeaderOps | null);
  'response'?: (_nodemesh_v1_HeaderOps | null);
}

export interface Headers__Output {
  'request': (_nodemesh_v1_HeaderOps__Output | null);
  'response': (_nodemesh_v1_HeaderOps__Output | null);
}
