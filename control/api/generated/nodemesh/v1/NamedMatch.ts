// Original file: control/api/routing.proto

import type { StringMatch as _nodemesh_v1_StringMatch, StringMatch__Output as _nodemesh_v1_StringMatch__Output } from '../../nodemesh/v1/StringMatch.js';

export interface NamedMatch {
  /**
   * header names lowercase; query parameter names as written
   */
  'name'?: (string);
  'match'?: (_nodemesh_v1_StringMatch | null);
}

export interface NamedMatch__Output {
  /**
   * header names lowercase; query parameter names as written
   */
  'name': (string);
  'match': (_nodemesh_v1_StringMatch__Output | null);
}
