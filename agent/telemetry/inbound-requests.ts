// Istio's request metrics at the destination's node proxy (reporter="destination"): every
// HTTP request or gRPC call it delivers to a local pod, whether it came over HBONE (15008),
// the same-node path or the plaintext capture (15006). The label set of a connection —
// source workload and principal as the transport proved them, destination workload, Service,
// connection_security_policy — is built once per (source, destination, Service, security)
// and shared by every connection and request with those; a request adds its code, flags,
// duration and sizes (telemetry/request-record.ts).
import type { Service, Workload } from '../../control/api/snapshot.js';
import { tcpLabelsDestination } from './metrics.js';
import { LabelSet } from './request-telemetry.js';
import type { RequestRecord } from './request-record.js';
import { startSpan, type SpanContext } from './tracing.js';
import type { HeaderOps } from '../../control/api/snapshot-routing.js';

/** Label sets kept; past this (churn of sources) the cache starts over — series are not lost. */
const MAX_CACHED = 4096;
const cache = new Map<string, InboundTelemetry>();

/** What every request of one inbound connection shares. */
export class InboundTelemetry {
  private grpcSet: LabelSet | undefined;
  constructor(
    readonly http: LabelSet,
    /** Envoy's inbound cluster name: inbound|<port>|| */
    readonly cluster: string,
  ) {}

  labels(grpc: boolean): LabelSet {
    if (!grpc) return this.http;
    if (!this.grpcSet) this.grpcSet = new LabelSet({ ...this.http.labels, request_protocol: 'grpc' }, this.http.subject, this.http.pods);
    return this.grpcSet;
  }
}

export function inboundTelemetry(
  source: Workload | undefined,
  sourcePrincipal: string | undefined,
  service: Service | undefined,
  destination: Workload,
  security: 'mutual_tls' | 'none',
  port: number,
): InboundTelemetry {
  const key = `${source?.uid ?? ''}|${sourcePrincipal ?? ''}|${service?.hostname ?? ''}|${destination.uid}|${security}|${port}`;
  let t = cache.get(key);
  if (t) return t;
  const l = tcpLabelsDestination(source, sourcePrincipal, service, destination, security, '-');
  l.request_protocol = 'http';
  t = new InboundTelemetry(new LabelSet(l, destination, { source: source?.name ?? '', destination: destination.name }), `inbound|${port}||`);
  if (cache.size >= MAX_CACHED) cache.clear();
  cache.set(key, t);
  return t;
}

/**
 * A request's header fields as they came on the wire (name, value, name, value …), looked up
 * by lower-case name only when asked: what an observed request (proxy/inbound-observed.ts)
 * keeps instead of building Node's headers object for each request.
 */
export class RawHeaderFields {
  constructor(readonly raw: readonly string[]) {}

  /** The field's value (several joined with ','), undefined when absent. */
  get(name: string): string | undefined {
    const raw = this.raw;
    let found: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length !== name.length || n.toLowerCase() !== name) continue;
      found = found === undefined ? raw[i + 1]! : `${found},${raw[i + 1]!}`;
    }
    return found;
  }
}

type HeaderFields = Record<string, string | string[] | undefined>;

/** One request at the destination, as the access log, span and tap read it. */
export class InboundRequest implements RequestRecord {
  readonly startTimeMs = Date.now();
  private readonly started = performance.now();
  durationMs = 0;
  upstreamServiceMs = -1;
  status = 0;
  grpcStatus = '';
  flags = '-';
  reqBytes = 0;
  respBytes = 0;
  upstreamHost = '';
  readonly span: SpanContext | undefined;
  /** trace headers to set on the request to the pod (the server span as parent, x-request-id) */
  readonly traceOps: HeaderOps | undefined;

  constructor(
    readonly telemetry: InboundTelemetry,
    readonly method: string,
    target: string,
    readonly authority: string,
    readonly protocolName: string,
    readonly downstreamRemote: string,
    private readonly headers: HeaderFields | RawHeaderFields,
    /**
     * Observed, not forwarded by the proxy (inbound-observed.ts): nothing can be added to it,
     * so no x-request-id is made and no span started (the observer runs only while no trace
     * collector is configured).
     */
    observed = false,
  ) {
    const q = target.indexOf('?');
    this.path = q < 0 ? target : target.slice(0, q);
    if (observed) {
      this.span = undefined;
      this.traceOps = undefined;
      return;
    }
    const trace = startSpan('server', telemetry.http.subject, (n) => this.header(n));
    this.span = trace.span;
    this.traceOps = trace.ops;
  }

  readonly path: string;

  get reporter(): 'destination' {
    return 'destination';
  }
  get upstreamCluster(): string {
    return this.telemetry.cluster;
  }
  get routeName(): string {
    return 'default';
  }
  get retries(): number {
    return 0;
  }

  header(name: string): string | undefined {
    const h = this.headers;
    if (h instanceof RawHeaderFields) return h.get(name);
    const v = h[name];
    return Array.isArray(v) ? v.join(',') : v;
  }

  /** The upstream answered with its head. */
  responded(status: number): void {
    this.status = status;
    this.upstreamServiceMs = performance.now() - this.started;
  }

  /** The duration up to now (call at the end). */
  end(): void {
    this.durationMs = performance.now() - this.started;
  }
}
