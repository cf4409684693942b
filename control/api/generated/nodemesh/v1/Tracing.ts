// Original file: control/api/telemetry.proto


export interface Tracing {
  'disabled'?: (boolean);
  /**
   * randomSamplingPercentage, 0–100; -1 when not set (inherited)
   */
  'randomSamplingPercentage'?: (number | string);
  'providers'?: (string)[];
}

export interface Tracing__Output {
  'disabled': (boolean);
  /**
   * randomSamplingPercentage, 0–100; -1 when not set (inherited)
   */
  'randomSamplingPercentage': (number);
  'providers': (string)[];
}
