// Istio's request metrics for the L7 engine: istio_requests_total,
// istio_request_duration_milliseconds, istio_request_bytes and istio_response_bytes, reported
// by the source node proxy (reporter="source"). The Istio label set of a (source workload,
// destination Service, endpoint) is built once and kept; the prom-client children of each
// (response code, grpc status, flags) under it are cached too, so recording a request is two
// map lookups and four increments — no label hashing or object building per request.
import type { Service, Workload } from '../../control/api/snapshot.js';
import {
  tcpConnectionsClosed,
  tcpConnectionsOpened,
  tcpReceivedBytes,
  tcpSentBytes,
  requestBytes,
  requestDuration,
  requestsTotal,
  responseBytes,
  tcpLabels,
  type HttpLabels,
  type IstioLabels,
} from './metrics.js';
import { metricLabels, metricsRule, telemetryGeneration, type Subject } from './telemetry-policy.js';

export interface Pods {
  readonly source: string;
  readonly destination: string;
}
const NO_PODS: Pods = { source: '', destination: '' };

interface Children {
  requests: { inc(v?: number): void };
  duration: { observe(v: number): void };
  reqBytes: { observe(v: number): void };
  respBytes: { observe(v: number): void };
}
/** A metric a Telemetry override disabled for this reporter's workload. */
const OFF = { inc() {}, observe() {} };

/** The labels of one (source, destination, endpoint) and its cached children. */
export class LabelSet {
  private readonly children = new Map<string, Children>();

  constructor(
    readonly labels: IstioLabels,
    /** the reporter's workload: its Telemetry decides access logs and sampling (telemetry-policy.ts) */
    readonly subject: Subject = undefined,
    /** the pods at either end ("" when not a pod of the snapshot), as `nodemesh tap` shows them */
    readonly pods: Pods = NO_PODS,
  ) {}

  private generation = 0;
  private policyGeneration = 0;

  record(code: number, grpc: string, flags: string, durationMs: number, reqBytes: number, respBytes: number): void {
    // series of workloads that left were dropped (pruneSeries): look ours up again
    // or the Telemetry overrides changed: look ours up again
    if (requestsTotal.generation !== this.generation || telemetryGeneration() !== this.policyGeneration) {
      this.generation = requestsTotal.generation;
      this.policyGeneration = telemetryGeneration();
      this.children.clear();
    }
    const key = `${code}|${grpc}|${flags}`;
    let c = this.children.get(key);
    if (!c) {
      const l: HttpLabels = { ...this.labels, response_code: String(code), grpc_response_status: grpc, response_flags: flags };
      // the reporter's workload's Telemetry metrics overrides (telemetry-policy.ts)
      const rule = metricsRule(this.subject, this.labels.reporter === 'destination' ? 'destination' : 'source');
      const as = (m: 'REQUEST_COUNT' | 'REQUEST_DURATION' | 'REQUEST_SIZE' | 'RESPONSE_SIZE') => metricLabels(rule, m, l);
      const count = as('REQUEST_COUNT');
      const duration = as('REQUEST_DURATION');
      const reqSize = as('REQUEST_SIZE');
      const respSize = as('RESPONSE_SIZE');
      c = {
        requests: count ? requestsTotal.labels(count) : OFF,
        duration: duration ? requestDuration.labels(duration) : OFF,
        reqBytes: reqSize ? requestBytes.labels(reqSize) : OFF,
        respBytes: respSize ? responseBytes.labels(respSize) : OFF,
      };
      this.children.set(key, c);
    }
    c.requests.inc();
    c.duration.observe(durationMs);
    c.reqBytes.observe(reqBytes);
    c.respBytes.observe(respBytes);
  }
}

export interface SecurityLabels {
  policy: 'mutual_tls' | 'none';
  sourcePrincipal: string;
  destinationPrincipal: string;
}

/** Builds the label set: Istio's TCP labels with the request protocol and the transport's security. */
export function labelSet(
  source: Workload | undefined,
  service: Service | undefined,
  destination: Workload | undefined,
  destinationAddress: string,
  protocol: 'http' | 'grpc',
  security: SecurityLabels | undefined,
): LabelSet {
  const l = tcpLabels(source, service, destination, destinationAddress, '-');
  l.request_protocol = protocol;
  if (security) {
    l.connection_security_policy = security.policy;
    l.source_principal = security.sourcePrincipal || 'unknown';
    l.destination_principal = security.destinationPrincipal || 'unknown';
  }
  return new LabelSet(l, source, { source: source?.name ?? '', destination: destination?.name ?? '' });
}

/**
 * Drops the request and TCP series of workloads no longer in the snapshot (`live`: their
 * "namespace/workload name"s), so pods and workloads coming and going leave the series count
 * bounded by what exists. Off the hot path: called once per snapshot.
 */
export function pruneSeries(live: ReadonlySet<string>): number {
  const keep = (l: Record<string, string>) =>
    (l.source_workload === 'unknown' || live.has(`${l.source_workload_namespace}/${l.source_workload}`)) &&
    (l.destination_workload === 'unknown' || live.has(`${l.destination_workload_namespace}/${l.destination_workload}`));
  let n = 0;
  for (const m of [requestsTotal, requestDuration, requestBytes, responseBytes]) n += m.retain(keep);
  for (const c of [tcpConnectionsOpened, tcpConnectionsClosed, tcpSentBytes, tcpReceivedBytes]) {
    const gone = (c as unknown as { hashMap: Record<string, { labels: Record<string, string> }> }).hashMap;
    for (const v of Object.values(gone ?? {})) if (!keep(v.labels)) (c.remove(v.labels), n++);
  }
  return n;
}
