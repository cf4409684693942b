// Original file: control/api/routing.proto


export interface Redirect {
  /**
   * "" = keep
   */
  'uri'?: (string);
  /**
   * Gateway API: replace the matched prefix instead of the whole path
   */
  'replacePrefixMatch'?: (string);
  'authority'?: (string);
  'scheme'?: (string);
  'port'?: (number);
  /**
   * 301 by default
   */
  'status'?: (number);
}

export interface Redirect__Output {
  /**
   * "" = keep
   */
  'uri': (string);
  /**
   * Gateway API: replace the matched prefix instead of the whole path
   */
  'replacePrefixMatch': (string);
  'authority': (string);
  'scheme': (string);
  'port': (number);
  /**
   * 301 by default
   */
  'status': (number);
}
