// Original file: control/api/telemetry.proto


/**
 * metrics[].overrides[]: one of Istio's standard metrics (or ALL_METRICS), the reporters it
 * applies to, whether it is disabled (unset: inherited) and the labels it drops
 */
export interface MetricsOverride {
  'metric'?: (string);
  'mode'?: (string);
  'disabled'?: (boolean);
  'removeTags'?: (string)[];
  '_disabled'?: "disabled";
}

/**
 * metrics[].overrides[]: one of Istio's standard metrics (or ALL_METRICS), the reporters it
 * applies to, whether it is disabled (unset: inherited) and the labels it drops
 */
export interface MetricsOverride__Output {
  'metric': (string);
  'mode': (string);
  'disabled'?: (boolean);
  'removeTags': (string)[];
}
