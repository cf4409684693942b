// Original file: control/api/routing.proto


export interface ConsistentHash {
  /**
   * "header" | "cookie" | "sourceIp" | "queryParam"
   */
  'kind'?: (string);
  /**
   * header / cookie / query parameter name
   */
  'name'?: (string);
  'cookiePath'?: (string);
  /**
   * double: a cookie may live longer than 2^32 ms (49 days)
   */
  'cookieTtlMs'?: (number | string);
}

export interface ConsistentHash__Output {
  /**
   * "header" | "cookie" | "sourceIp" | "queryParam"
   */
  'kind': (string);
  /**
   * header / cookie / query parameter name
   */
  'name': (string);
  'cookiePath': (string);
  /**
   * double: a cookie may live longer than 2^32 ms (49 days)
   */
  'cookieTtlMs': (number);
}
