// Original file: control/api/routing.proto

import type { RegexRewrite as _nodemesh_v1_RegexRewrite, RegexRewrite__Output as _nodemesh_v1_RegexRewrite__Output } from '../../nodemesh/v1/RegexRewrite.js';

export interface Rewrite {
  /**
   * replaces the matched prefix (Istio uri rewrite on a prefix match) or the full path
   */
  'uri'?: (string);
  /**
   * Gateway API ReplacePrefixMatch ("" = not used)
   */
  'replacePrefixMatch'?: (string);
  /**
   * full replacement path (Gateway API ReplaceFullPath)
   */
  'replaceFullPath'?: (string);
  'uriRegex'?: (_nodemesh_v1_RegexRewrite | null);
  'authority'?: (string);
  '_uriRegex'?: "uriRegex";
}

export interface Rewrite__Output {
  /**
   * replaces the matched prefix (Istio uri rewrite on a prefix match) or the full path
   */
  'uri': (string);
  /**
   * Gateway API ReplacePrefixMatch ("" = not used)
   */
  'replacePrefixMatch': (string);
  /**
   * full replacement path (Gateway API ReplaceFullPath)
   */
  'replaceFullPath': (string);
  'uriRegex'?: (_nodemesh_v1_RegexRewrite__Output | null);
  'authority': (string);
}
