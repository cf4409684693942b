// Istio's request metrics for the L7 engine: istio_requests_total,
// istio_request_duration_milliseconds, istio_request_bytes and istio_response_bytes, reported
// by the source node proxy (reporter="source"). The Istio label set of a (source workload,
// destination Service, endpoint) is built once and kept; the prom-client children of each
// (response code, grpc status, flags) under it are cached too, so recording a request is two
// map lookups and four increments — no label hashing or object building per request.
import type { Duplex } from 'node:stream';
import type { Service, Workload } from '../../control/api/snapshot.js';
import {
  onScrape,
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

interface Children {
  requests: { inc(v?: number): void };
  duration: { observe(v: number): void };
  reqBytes: { observe(v: number): void };
  respBytes: { observe(v: number): void };
}

/** The labels of one (source, destination, endpoint) and its cached children. */
export class LabelSet {
  private readonly children = new Map<string, Children>();

  constructor(readonly labels: IstioLabels) {}

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
  return new LabelSet(l);
}

interface Tracked {
  d: Duplex & { bytesRead?: number; bytesWritten?: number };
  labels: IstioLabels;
  countedIn: number;
  countedOut: number;
}

/**
 * Istio's TCP metrics for the connections the L7 engine opens to endpoints. As in Istio
 * ambient, where ztunnel reports the connections and the waypoint the requests, the node
 * proxy reports both: each pooled upstream connection carries one source pod's requests to
 * one endpoint, so its labels are exact. Bytes come from the stream's byte counters (a
 * socket's; a tunnel stream without them reports none) and are brought up to date at
 * every scrape.
 */
export class UpstreamConnectionTelemetry {
  private readonly open = new Set<Tracked>();
  private readonly offScrape: () => void;

  constructor() {
    this.offScrape = onScrape(() => {
      for (const t of this.open) this.flush(t);
    });
  }

  track(d: Duplex, labels: IstioLabels): void {
    const t: Tracked = { d, labels, countedIn: 0, countedOut: 0 };
    this.open.add(t);
    tcpConnectionsOpened.inc(labels);
    d.once('close', () => {
      this.flush(t);
      tcpConnectionsClosed.inc(labels);
      this.open.delete(t);
    });
  }

  private flush(t: Tracked): void {
    // request direction (client → upstream) is "received", the response direction "sent"
    const written = t.d.bytesWritten;
    const read = t.d.bytesRead;
    if (typeof written === 'number' && written > t.countedIn) {
      tcpReceivedBytes.inc(t.labels, written - t.countedIn);
      t.countedIn = written;
    }
    if (typeof read === 'number' && read > t.countedOut) {
      tcpSentBytes.inc(t.labels, read - t.countedOut);
      t.countedOut = read;
    }
  }

  close(): void {
    this.offScrape();
  }
}
