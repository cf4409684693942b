// The snapshot's Telemetry section (telemetry.proto): Istio's Telemetry resources compiled
// for the agents, which resolve them per workload (agent/telemetry/telemetry-policy.ts).
import type { TelemetryPolicy__Output } from './generated/nodemesh/v1/TelemetryPolicy.js';

export type TelemetryPolicy = TelemetryPolicy__Output;
