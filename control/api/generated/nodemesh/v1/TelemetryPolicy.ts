// Original file: control/api/telemetry.proto

import type { AccessLogging as _nodemesh_v1_AccessLogging, AccessLogging__Output as _nodemesh_v1_AccessLogging__Output } from '../../nodemesh/v1/AccessLogging.js';
import type { Tracing as _nodemesh_v1_Tracing, Tracing__Output as _nodemesh_v1_Tracing__Output } from '../../nodemesh/v1/Tracing.js';

export interface TelemetryPolicy {
  'namespace'?: (string);
  'name'?: (string);
  /**
   * spec.selector.matchLabels (or targetRefs' Service selector); empty: the whole namespace
   */
  'selector'?: ({[key: string]: string});
  /**
   * the first accessLogging entry, when the resource has one
   */
  'accessLogging'?: (_nodemesh_v1_AccessLogging | null);
  /**
   * the first tracing entry, when the resource has one
   */
  'tracing'?: (_nodemesh_v1_Tracing | null);
  '_accessLogging'?: "accessLogging";
  '_tracing'?: "tracing";
}

export interface TelemetryPolicy__Output {
  'namespace': (string);
  'name': (string);
  /**
   * spec.selector.matchLabels (or targetRefs' Service selector); empty: the whole namespace
   */
  'selector': ({[key: string]: string});
  /**
   * the first accessLogging entry, when the resource has one
   */
  'accessLogging'?: (_nodemesh_v1_AccessLogging__Output | null);
  /**
   * the first tracing entry, when the resource has one
   */
  'tracing'?: (_nodemesh_v1_Tracing__Output | null);
}
