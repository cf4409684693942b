// Istio's request metrics for the L7 engine: istio_requests_total,
// istio_request_duration_milliseconds, istio_request_bytes and istio_response_bytes, reported
// by the source node proxy (reporter="source"). The Istio label set of a (source workload,
// destination Service, endpoint) is built once and kept; the prom-client children of each
// (response code, grpc status, flags) under it are cached too, so recording a request is two
// map lookups and four increments — no label hashing or object building per request.
import type { Service, Workload } from '../../control/api/snapshot.js';
import {
  requestBytes,
  requestDuration,
  requestsTotal,
  responseBytes,
  tcpLabels,
  type HttpLabels,
  type IstioLabels,
} from './metrics.js';
import type { Subject } from './telemetry-policy.js';

interface Children {
  requests: { inc(v?: number): void };
  duration: { observe(v: number): void };
  reqBytes: { observe(v: number): void };
  respBytes: { observe(v: number): void };
}

/** The labels of one (source, destination, endpoint) and its cached children. */
export class LabelSet {
  private readonly children = new Map<string, Children>();

  constructor(
    readonly labels: IstioLabels,
    /** the reporter's workload: its Telemetry decides access logs and sampling (telemetry-policy.ts) */
    readonly subject: Subject = undefined,
  ) {}

  record(code: number, grpc: string, flags: string, durationMs: number, reqBytes: number, respBytes: number): void {
    const key = `${code}|${grpc}|${flags}`;
    let c = this.children.get(key);
    if (!c) {
      const l: HttpLabels = { ...this.labels, response_code: String(code), grpc_response_status: grpc, response_flags: flags };
      c = {
        requests: requestsTotal.labels(l),
        duration: requestDuration.labels(l),
        reqBytes: requestBytes.labels(l),
        respBytes: responseBytes.labels(l),
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
  return new LabelSet(l, source);
}
