// Original file: control/api/telemetry.proto


/**
 * match.mode: CLIENT_AND_SERVER (the default), CLIENT (reporter source), SERVER (destination)
 */
export interface AccessLogging {
  'disabled'?: (boolean);
  /**
   * filter.expression, checked by the control plane (control/api/telemetry-filter.ts)
   */
  'filter'?: (string);
  'providers'?: (string)[];
  'mode'?: (string);
}

/**
 * match.mode: CLIENT_AND_SERVER (the default), CLIENT (reporter source), SERVER (destination)
 */
export interface AccessLogging__Output {
  'disabled': (boolean);
  /**
   * filter.expression, checked by the control plane (control/api/telemetry-filter.ts)
   */
  'filter': (string);
  'providers': (string)[];
  'mode': (string);
}
