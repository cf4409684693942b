// Original file: control/api/telemetry.proto

import type { AccessLogging as _nodemesh_v1_AccessLogging, AccessLogging__Output as _nodemesh_v1_AccessLogging__Output } from '../../nodemesh/v1/AccessLogging.js';
import type { Tracing as _nodemesh_v1_Tracing, Tracing__Output as _nodemesh_v1_Tracing__Output } from '../../nodemesh/v1/Tracing.js';
import type { MetricsOverride as _nodemesh_v1_MetricsOverride, MetricsOverride__Output as _nodemesh_v1_MetricsOverride__Output } from '../../nodemesh/v1/MetricsOverride.js';

export interface TelemetryPolicy {
  'namespace'?: (string);
  'name'?: (string);
  /**
   * spec.selector.matchLabels (or targetRefs' Service selector); empty: the whole namespace
   */
  'selector'?: ({[key: string]: string});
  /**
   * the accessLogging entries, in order; for a reporter the first whose mode covers it applies
   */
  'accessLogging'?: (_nodemesh_v1_AccessLogging)[];
  /**
   * the tracing entries, in order; for a reporter the first whose mode covers it applies
   */
  'tracing'?: (_nodemesh_v1_Tracing)[];
  /**
   * every metrics entry's overrides, in order (merged from the mesh's to the workload's)
   */
  'metricsOverrides'?: (_nodemesh_v1_MetricsOverride)[];
}

export interface TelemetryPolicy__Output {
  'namespace': (string);
  'name': (string);
  /**
   * spec.selector.matchLabels (or targetRefs' Service selector); empty: the whole namespace
   */
  'selector': ({[key: string]: string});
  /**
   * the accessLogging entries, in order; for a reporter the first whose mode covers it applies
   */
  'accessLogging': (_nodemesh_v1_AccessLogging__Output)[];
  /**
   * the tracing entries, in order; for a reporter the first whose mode covers it applies
   */
  'tracing': (_nodemesh_v1_Tracing__Output)[];
  /**
   * every metrics entry's overrides, in order (merged from the mesh's to the workload's)
   */
  'metricsOverrides': (_nodemesh_v1_MetricsOverride__Output)[];
}
