// Original file: control/api/security.proto

import type { ValueMatch as _nodemesh_v1_ValueMatch, ValueMatch__Output as _nodemesh_v1_ValueMatch__Output } from '../../nodemesh/v1/ValueMatch.js';

export interface AttributeMatch {
  /**
   * e.g. source.principal, destination.port, request.headers (the list: ATTRIBUTES in
   * snapshot-security.ts)
   */
  'attribute'?: (string);
  /**
   * the bracketed part of the key: [header] (lowercase) of request.headers, the claim path
   * of request.auth.claims; else empty
   */
  'path'?: (string)[];
  /**
   * holds if one of these matches (ignored when empty)
   */
  'values'?: (_nodemesh_v1_ValueMatch)[];
  /**
   * ... and none of these does
   */
  'notValues'?: (_nodemesh_v1_ValueMatch)[];
}

export interface AttributeMatch__Output {
  /**
   * e.g. source.principal, destination.port, request.headers (the list: ATTRIBUTES in
   * snapshot-security.ts)
   */
  'attribute': (string);
  /**
   * the bracketed part of the key: [header] (lowercase) of request.headers, the claim path
   * of request.auth.claims; else empty
   */
  'path': (string)[];
  /**
   * holds if one of these matches (ignored when empty)
   */
  'values': (_nodemesh_v1_ValueMatch__Output)[];
  /**
   * ... and none of these does
   */
  'notValues': (_nodemesh_v1_ValueMatch__Output)[];
}
