// Original file: control/api/routing.proto


/**
 * Envoy regex_rewrite: every match of `match` (RE2) replaced; `rewrite` uses \1 group references
 */
export interface RegexRewrite {
  'match'?: (string);
  'rewrite'?: (string);
}

/**
 * Envoy regex_rewrite: every match of `match` (RE2) replaced; `rewrite` uses \1 group references
 */
export interface RegexRewrite__Output {
  'match': (string);
  'rewrite': (string);
}
