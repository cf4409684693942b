// Original file: control/api/telemetry.proto

import type { CustomTag as _nodemesh_v1_CustomTag, CustomTag__Output as _nodemesh_v1_CustomTag__Output } from '../../nodemesh/v1/CustomTag.js';

export interface Tracing {
  'disabled'?: (boolean);
  /**
   * randomSamplingPercentage, 0–100; -1 when not set (inherited)
   */
  'randomSamplingPercentage'?: (number | string);
  'providers'?: (string)[];
  'mode'?: (string);
  'customTags'?: (_nodemesh_v1_CustomTag)[];
}

export interface Tracing__Output {
  'disabled': (boolean);
  /**
   * randomSamplingPercentage, 0–100; -1 when not set (inherited)
   */
  'randomSamplingPercentage': (number);
  'providers': (string)[];
  'mode': (string);
  'customTags': (_nodemesh_v1_CustomTag__Output)[];
}
