// Original file: control/api/security.proto

import type { MatchClause as _nodemesh_v1_MatchClause, MatchClause__Output as _nodemesh_v1_MatchClause__Output } from '../../nodemesh/v1/MatchClause.js';
import type { AttributeMatch as _nodemesh_v1_AttributeMatch, AttributeMatch__Output as _nodemesh_v1_AttributeMatch__Output } from '../../nodemesh/v1/AttributeMatch.js';

/**
 * from AND to AND when; an empty from or to matches anything, so a rule with no clauses
 * matches everything
 */
export interface AuthorizationRule {
  /**
   * OR of the rule's from[].source
   */
  'from'?: (_nodemesh_v1_MatchClause)[];
  /**
   * OR of the rule's to[].operation
   */
  'to'?: (_nodemesh_v1_MatchClause)[];
  /**
   * AND of the rule's when conditions
   */
  'when'?: (_nodemesh_v1_AttributeMatch)[];
}

/**
 * from AND to AND when; an empty from or to matches anything, so a rule with no clauses
 * matches everything
 */
export interface AuthorizationRule__Output {
  /**
   * OR of the rule's from[].source
   */
  'from': (_nodemesh_v1_MatchClause__Output)[];
  /**
   * OR of the rule's to[].operation
   */
  'to': (_nodemesh_v1_MatchClause__Output)[];
  /**
   * AND of the rule's when conditions
   */
  'when': (_nodemesh_v1_AttributeMatch__Output)[];
}
