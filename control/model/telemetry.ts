// A validated Telemetry resource (control/validate/istio-telemetry.ts): its policy as the
// snapshot carries it, and its creation time for the oldest-first order.
import type { TelemetryPolicy } from '../api/snapshot-telemetry.js';

export interface TelemetrySpec {
  policy: Omit<TelemetryPolicy, 'namespace' | 'name'>;
  createdAt: number;
}
