// Original file: control/api/security.proto


/**
 * How one value is compared:
 * - exact / prefix (`abc*`) / suffix (`*abc`) / presence (`*`: any non-empty value), as
 * Istio's "Exact, Prefix, Suffix and Presence match" (hosts case-insensitively);
 * - template: a path with Envoy URI-template operators `{*}` (one segment) and `{**}`
 * (any number of characters including `/`), the whole path must match;
 * - cidr: an IP address or CIDR range (`value` is the network in addr/len form).
 */
export interface ValueMatch {
  /**
   * exact | prefix | suffix | presence | template | cidr
   */
  'kind'?: (string);
  /**
   * the literal part (without `*`); "" for presence
   */
  'value'?: (string);
}

/**
 * How one value is compared:
 * - exact / prefix (`abc*`) / suffix (`*abc`) / presence (`*`: any non-empty value), as
 * Istio's "Exact, Prefix, Suffix and Presence match" (hosts case-insensitively);
 * - template: a path with Envoy URI-template operators `{*}` (one segment) and `{**}`
 * (any number of characters including `/`), the whole path must match;
 * - cidr: an IP address or CIDR range (`value` is the network in addr/len form).
 */
export interface ValueMatch__Output {
  /**
   * exact | prefix | suffix | presence | template | cidr
   */
  'kind': (string);
  /**
   * the literal part (without `*`); "" for presence
   */
  'value': (string);
}
