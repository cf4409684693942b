// The snapshot's Telemetry section (telemetry.proto): Istio's Telemetry resources compiled
// for the agents, which resolve them per workload and reporter
// (agent/telemetry/telemetry-policy.ts). The words below are Istio's (telemetry.istio.io/v1).
import type { TelemetryPolicy__Output } from './generated/nodemesh/v1/TelemetryPolicy.js';
import type { AccessLogging__Output } from './generated/nodemesh/v1/AccessLogging.js';
import type { Tracing__Output } from './generated/nodemesh/v1/Tracing.js';
import type { CustomTag__Output } from './generated/nodemesh/v1/CustomTag.js';
import type { MetricsOverride__Output } from './generated/nodemesh/v1/MetricsOverride.js';

export type TelemetryPolicy = TelemetryPolicy__Output;
export type AccessLoggingEntry = AccessLogging__Output;
export type TracingEntry = Tracing__Output;
export type CustomTag = CustomTag__Output;
export type MetricsOverride = MetricsOverride__Output;

/** match.mode: CLIENT is the source reporter, SERVER the destination reporter. */
export const TELEMETRY_MODES = ['CLIENT_AND_SERVER', 'CLIENT', 'SERVER'] as const;
export type TelemetryMode = (typeof TELEMETRY_MODES)[number];

export const CUSTOM_TAG_KINDS = ['literal', 'header', 'environment'] as const;

/** Istio's standard metrics nodemesh reports, and what their override names (metrics[].overrides[].match.metric). */
export const ISTIO_METRIC_NAMES = {
  REQUEST_COUNT: 'istio_requests_total',
  REQUEST_DURATION: 'istio_request_duration_milliseconds',
  REQUEST_SIZE: 'istio_request_bytes',
  RESPONSE_SIZE: 'istio_response_bytes',
  TCP_OPENED_CONNECTIONS: 'istio_tcp_connections_opened_total',
  TCP_CLOSED_CONNECTIONS: 'istio_tcp_connections_closed_total',
  TCP_SENT_BYTES: 'istio_tcp_sent_bytes_total',
  TCP_RECEIVED_BYTES: 'istio_tcp_received_bytes_total',
} as const;
export type IstioMetric = keyof typeof ISTIO_METRIC_NAMES;
/** The override's metric words the snapshot carries: the standard metrics and ALL_METRICS. */
export const ISTIO_METRICS = ['ALL_METRICS', ...(Object.keys(ISTIO_METRIC_NAMES) as IstioMetric[])] as const;

/** Istio's standard labels of every request and TCP metric (istio.io/latest/docs/reference/config/metrics/). */
export const ISTIO_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;
/** The request metrics' labels beyond those */
export const HTTP_ONLY_LABELS = ['response_code', 'grpc_response_status'] as const;

/** Whether an entry of mode `mode` applies at `reporter`. */
export function modeCovers(mode: string, reporter: 'source' | 'destination'): boolean {
  return mode === '' || mode === 'CLIENT_AND_SERVER' || (mode === 'CLIENT' ? reporter === 'source' : mode === 'SERVER' && reporter === 'destination');
}
