// Original file: control/api/telemetry.proto


export interface AccessLogging {
  'disabled'?: (boolean);
  /**
   * filter.expression, checked by the control plane (control/api/telemetry-filter.ts)
   */
  'filter'?: (string);
  'providers'?: (string)[];
}

export interface AccessLogging__Output {
  'disabled': (boolean);
  /**
   * filter.expression, checked by the control plane (control/api/telemetry-filter.ts)
   */
  'filter': (string);
  'providers': (string)[];
}
