// Original file: control/api/routing.proto

import type { StringMatch as _nodemesh_v1_StringMatch, StringMatch__Output as _nodemesh_v1_StringMatch__Output } from '../../nodemesh/v1/StringMatch.js';
import type { NamedMatch as _nodemesh_v1_NamedMatch, NamedMatch__Output as _nodemesh_v1_NamedMatch__Output } from '../../nodemesh/v1/NamedMatch.js';

/**
 * One match block: every set condition must hold (AND). A route's blocks are OR'd.
 */
export interface HttpMatch {
  'uri'?: (_nodemesh_v1_StringMatch | null);
  'method'?: (_nodemesh_v1_StringMatch | null);
  'authority'?: (_nodemesh_v1_StringMatch | null);
  'scheme'?: (_nodemesh_v1_StringMatch | null);
  'headers'?: (_nodemesh_v1_NamedMatch)[];
  /**
   * headers that must NOT match
   */
  'withoutHeaders'?: (_nodemesh_v1_NamedMatch)[];
  'queryParams'?: (_nodemesh_v1_NamedMatch)[];
  /**
   * the Service port the request was sent to; 0 = any
   */
  'port'?: (number);
  /**
   * VirtualService sourceLabels: the calling workload's labels must include these
   */
  'sourceLabels'?: ({[key: string]: string});
  /**
   * VirtualService sourceNamespace; "" = any
   */
  'sourceNamespace'?: (string);
  '_uri'?: "uri";
  '_method'?: "method";
  '_authority'?: "authority";
  '_scheme'?: "scheme";
}

/**
 * One match block: every set condition must hold (AND). A route's blocks are OR'd.
 */
export interface HttpMatch__Output {
  'uri'?: (_nodemesh_v1_StringMatch__Output | null);
  'method'?: (_nodemesh_v1_StringMatch__Output | null);
  'authority'?: (_nodemesh_v1_StringMatch__Output | null);
  'scheme'?: (_nodemesh_v1_StringMatch__Output | null);
  'headers': (_nodemesh_v1_NamedMatch__Output)[];
  /**
   * headers that must NOT match
   */
  'withoutHeaders': (_nodemesh_v1_NamedMatch__Output)[];
  'queryParams': (_nodemesh_v1_NamedMatch__Output)[];
  /**
   * the Service port the request was sent to; 0 = any
   */
  'port': (number);
  /**
   * VirtualService sourceLabels: the calling workload's labels must include these
   */
  'sourceLabels': ({[key: string]: string});
  /**
   * VirtualService sourceNamespace; "" = any
   */
  'sourceNamespace': (string);
}
