// Original file: control/api/security.proto

import type { AttributeMatch as _nodemesh_v1_AttributeMatch, AttributeMatch__Output as _nodemesh_v1_AttributeMatch__Output } from '../../nodemesh/v1/AttributeMatch.js';

/**
 * every match holds (AND): the fields of one Istio source or operation
 */
export interface MatchClause {
  'matches'?: (_nodemesh_v1_AttributeMatch)[];
}

/**
 * every match holds (AND): the fields of one Istio source or operation
 */
export interface MatchClause__Output {
  'matches': (_nodemesh_v1_AttributeMatch__Output)[];
}
