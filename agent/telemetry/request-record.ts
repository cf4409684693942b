// The one call the proxy makes when a request ends, at either reporter: its Istio request
// metrics, then — only when each is on — its access-log line, its span and its tap event.
// The record is the exchange itself (source) or the destination's per-request object, seen
// through the RequestRecord interface, so ending a request allocates nothing here unless a
// log line, a sampled span or a tap subscriber asks for it.
import type { LabelSet } from './request-telemetry.js';
import { publishRequest, requestTapping } from './tap.js';
import { countRetries } from './mesh-metrics.js';
import { logRequest } from './access-log.js';
import { endSpan, type SpanContext } from './tracing.js';
import type { HeaderOps } from '../../control/api/snapshot-routing.js';

export interface RequestRecord {
  readonly reporter: 'source' | 'destination';
  /** ms since the epoch when the request started */
  readonly startTimeMs: number;
  readonly durationMs: number;
  /** ms from the last try's start to its response head (Envoy's x-envoy-upstream-service-time), -1 when none */
  readonly upstreamServiceMs: number;
  readonly method: string;
  /** without the query */
  readonly path: string;
  readonly authority: string;
  /** "HTTP/1.1" or "HTTP/2" */
  readonly protocolName: string;
  readonly status: number;
  /** '' when not gRPC */
  readonly grpcStatus: string;
  readonly flags: string;
  readonly reqBytes: number;
  readonly respBytes: number;
  /** the address answering (ip:port), '' when the proxy answered itself */
  readonly upstreamHost: string;
  /** Envoy's cluster name (outbound|80||web.shop.svc.cluster.local, inbound|8080||) */
  readonly upstreamCluster: string;
  readonly routeName: string;
  /** tries beyond the first */
  readonly retries: number;
  /** the peer as the proxy saw it (ip:port) */
  readonly downstreamRemote: string;
  /** a request header as received (lower-case name) */
  header(name: string): string | undefined;
  /** the span of this request at this reporter, when sampled */
  readonly span: SpanContext | undefined;
  /** the trace headers this proxy set on the request (x-request-id it generated, traceparent) */
  readonly traceOps: HeaderOps | undefined;
}

/** Ends a request: metrics always, then the access log, the span and the tap when they are on. */
export function requestDone(labels: LabelSet, r: RequestRecord): void {
  const grpc = r.grpcStatus;
  labels.record(r.status, grpc === '' ? '-' : grpc, r.flags, r.durationMs, r.reqBytes, r.respBytes);
  const retried = r.retries;
  if (retried > 0) countRetries(labels.labels.destination_service, retried, r.status);
  logRequest(labels.subject, labels.labels, r, r.span?.traceId ?? '');
  if (r.span) endSpan(r.span, labels.labels, r);
  if (requestTapping()) publishRequest(labels.labels, labels.pods, r);
}
