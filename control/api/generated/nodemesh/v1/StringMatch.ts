// Original file: control/api/routing.proto


/**
 * How one string is matched. "pathPrefix" is Gateway API's PathPrefix: per path element.
 */
export interface StringMatch {
  /**
   * "exact" | "prefix" | "regex" | "present" | "pathPrefix"
   */
  'kind'?: (string);
  /**
   * empty for "present"
   */
  'value'?: (string);
  'ignoreCase'?: (boolean);
}

/**
 * How one string is matched. "pathPrefix" is Gateway API's PathPrefix: per path element.
 */
export interface StringMatch__Output {
  /**
   * "exact" | "prefix" | "regex" | "present" | "pathPrefix"
   */
  'kind': (string);
  /**
   * empty for "present"
   */
  'value': (string);
  'ignoreCase': (boolean);
}
