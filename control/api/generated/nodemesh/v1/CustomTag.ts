// Original file: control/api/telemetry.proto


/**
 * tracing.customTags: a span attribute named `name`: kind "literal" (value is the value),
 * "header" (value names a request header) or "environment" (value names an environment
 * variable of the node proxy), default_value when the header or variable is absent
 */
export interface CustomTag {
  'name'?: (string);
  'kind'?: (string);
  'value'?: (string);
  'defaultValue'?: (string);
}

/**
 * tracing.customTags: a span attribute named `name`: kind "literal" (value is the value),
 * "header" (value names a request header) or "environment" (value names an environment
 * variable of the node proxy), default_value when the header or variable is absent
 */
export interface CustomTag__Output {
  'name': (string);
  'kind': (string);
  'value': (string);
  'defaultValue': (string);
}
