// Distributed traces: a client span at the source node proxy and a server span at the
// destination node proxy for each sampled request, parented through W3C traceparent (and
// B3, single `b3` or multi x-b3-* headers, understood and propagated in the form that came
// in), exported as OTLP/HTTP JSON to the collector (NODEMESH_OTLP_ENDPOINT).
//
// Sampling is parent-based, as Envoy's: a request that arrives with a sampling decision
// keeps it; one without gets the reporter workload's Telemetry `randomSamplingPercentage`
// (default 1 %). x-request-id is generated when absent (Envoy's UUIDv4), sampled or not.
//
// Off the hot path: an unsampled request costs a header read and, without x-request-id, a
// UUID; spans are queued and sent in batches (every second or 512 spans), at most
// MAX_QUEUED waiting; a collector that is down or slow costs dropped spans (counted), never
// a request. The wire encoder is written here (OTLP's JSON mapping is small), not the SDK.
import { randomBytes, randomUUID } from 'node:crypto';
import { Counter } from '../../common/prometheus.js';
import { logger } from '../../common/log.js';
import type { HeaderOps } from '../../control/api/snapshot-routing.js';
import { registry, type IstioLabels } from './metrics.js';
import { tracingRule, type Subject } from './telemetry-policy.js';
import type { CustomTag } from '../../control/api/snapshot-telemetry.js';
import type { LoggedRequest } from './access-log.js';

const log = logger('agent/tracing');

const MAX_QUEUED = 4096;
const BATCH = 512;
const FLUSH_MS = 1000;
const EXPORT_TIMEOUT_MS = 5000;

export const spansExported = new Counter({ name: 'nodemesh_agent_spans_exported_total', help: 'Spans the collector accepted', registers: [registry] });
export const spansDropped = new Counter({
  name: 'nodemesh_agent_spans_dropped_total',
  help: 'Spans not exported: the queue full (queue), the collector down, refusing or slow (export)',
  labelNames: ['reason'],
  registers: [registry],
});

export interface SpanContext {
  traceId: string;
  spanId: string;
  /** the span this one is a child of ('' for a root) */
  parentSpanId: string;
  /** the request came with B3 headers: propagate B3 too */
  b3: 'single' | 'multi' | '';
  kind: 'client' | 'server';
  startNs: bigint;
  /** the reporter's Telemetry customTags, resolved when the span started */
  customTags: readonly CustomTag[];
}

interface Incoming {
  traceId: string;
  spanId: string;
  /** true/false: the caller decided; undefined: no decision */
  sampled: boolean | undefined;
  b3: 'single' | 'multi' | '';
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The trace context a request arrived with, W3C first, then B3. */
function incoming(header: (n: string) => string | undefined): Incoming | undefined {
  const tp = header('traceparent');
  if (tp) {
    const m = TRACEPARENT.exec(tp.trim());
    if (m && m[1] !== '0'.repeat(32) && m[2] !== '0'.repeat(16)) return { traceId: m[1]!, spanId: m[2]!, sampled: (parseInt(m[3]!, 16) & 1) === 1, b3: '' };
  }
  const single = header('b3');
  if (single) {
    const [t, s, d] = single.trim().split('-');
    if (t && s && /^[0-9a-f]{16}([0-9a-f]{16})?$/.test(t) && /^[0-9a-f]{16}$/.test(s))
      return { traceId: t.padStart(32, '0'), spanId: s, sampled: d === undefined ? undefined : d === '1' || d === 'd', b3: 'single' };
    if (single === '0' || single === '1') return undefined;
  }
  const t = header('x-b3-traceid');
  const s = header('x-b3-spanid');
  if (t && s && /^[0-9a-f]{16}([0-9a-f]{16})?$/.test(t) && /^[0-9a-f]{16}$/.test(s)) {
    const flag = header('x-b3-sampled');
    const debug = header('x-b3-flags') === '1';
    return { traceId: t.padStart(32, '0'), spanId: s, sampled: debug ? true : flag === undefined ? undefined : flag === '1' || flag === 'true', b3: 'multi' };
  }
  return undefined;
}

/**
 * A request starts at a reporter: its span when sampled, and the headers to send on
 * (traceparent and B3 naming this proxy's span, x-request-id when the request had none).
 * Returns undefined when nothing needs to change.
 */
export function startSpan(
  kind: 'client' | 'server',
  subject: Subject,
  header: (n: string) => string | undefined,
): { span: SpanContext | undefined; ops: HeaderOps | undefined } {
  const set: Record<string, string> = {};
  let changed = false;
  if (!header('x-request-id')) {
    set['x-request-id'] = randomUUID();
    changed = true;
  }
  // no collector (tracing's default): only x-request-id, without reading the trace headers
  const rule = exporter ? tracingRule(subject, kind === 'client' ? 'source' : 'destination') : undefined;
  const inc = rule ? incoming(header) : undefined;
  const sampled = inc?.sampled ?? (rule !== undefined && Math.random() * 100 < rule.samplingPercent);
  if (!sampled || !exporter || !rule) return { span: undefined, ops: changed ? { set, add: {}, remove: [] } : undefined };
  const span: SpanContext = {
    traceId: inc?.traceId ?? randomBytes(16).toString('hex'),
    spanId: randomBytes(8).toString('hex'),
    parentSpanId: inc?.spanId ?? '',
    b3: inc?.b3 ?? '',
    kind,
    startNs: process.hrtime.bigint() - hrOffset + epochNs,
    customTags: rule.customTags,
  };
  set.traceparent = `00-${span.traceId}-${span.spanId}-01`;
  if (span.b3 === 'single') set.b3 = `${span.traceId}-${span.spanId}-1`;
  if (span.b3 === 'multi') {
    set['x-b3-traceid'] = span.traceId;
    set['x-b3-spanid'] = span.spanId;
    set['x-b3-sampled'] = '1';
    set['x-b3-parentspanid'] = span.parentSpanId;
  }
  return { span, ops: { set, add: {}, remove: [] } };
}

// wall-clock nanoseconds from the monotonic clock, anchored once
const hrOffset = process.hrtime.bigint();
const epochNs = BigInt(Date.now()) * 1_000_000n;

/** What a span reads of an ended request: the access log's record (access-log.ts). */
type EndedRequest = Pick<
  LoggedRequest,
  'reporter' | 'method' | 'path' | 'authority' | 'protocolName' | 'status' | 'grpcStatus' | 'flags' | 'reqBytes' | 'respBytes' | 'upstreamHost' | 'upstreamCluster' | 'retries' | 'header'
>;

type Attr = { key: string; value: { stringValue: string } | { intValue: string } | { boolValue: boolean } };
const str = (key: string, v: string): Attr => ({ key, value: { stringValue: v } });
const int = (key: string, v: number): Attr => ({ key, value: { intValue: String(v) } });

/** A trace collector is configured: requests may be sampled and carry this proxy's trace headers. */
export function tracingConfigured(): boolean {
  return exporter !== undefined;
}

/** Ends a sampled span with Istio's and the mesh's attributes, and queues it for export. */
export function endSpan(span: SpanContext, l: IstioLabels, r: EndedRequest): void {
  if (!exporter) return;
  const port = r.upstreamCluster.split('|')[1] ?? '';
  const attributes: Attr[] = [
    str('component', 'proxy'),
    str('http.method', r.method),
    str('http.url', `http://${r.authority}${r.path}`),
    str('http.protocol', r.protocolName),
    int('http.status_code', r.status),
    str('response_flags', r.flags),
    str('upstream_cluster', r.upstreamCluster),
    str('upstream_cluster.name', r.upstreamCluster),
    str('peer.address', r.upstreamHost),
    str('guid:x-request-id', r.header('x-request-id') ?? ''),
    str('user_agent', r.header('user-agent') ?? ''),
    int('request_size', r.reqBytes),
    int('response_size', r.respBytes),
    str('istio.canonical_service', r.reporter === 'source' ? l.source_canonical_service : l.destination_canonical_service),
    str('istio.namespace', r.reporter === 'source' ? l.source_workload_namespace : l.destination_workload_namespace),
    str('node_id', exporter.node),
    str('nodemesh.reporter', r.reporter),
    str('nodemesh.source_workload', l.source_workload),
    str('nodemesh.source_principal', l.source_principal),
    str('nodemesh.destination_workload', l.destination_workload),
    str('nodemesh.destination_principal', l.destination_principal),
    str('nodemesh.destination_service', l.destination_service),
    int('nodemesh.retries', r.retries),
  ];
  if (r.grpcStatus) attributes.push(str('grpc.status_code', r.grpcStatus));
  for (const tag of span.customTags) attributes.push(str(tag.name, customTagValue(tag, r)));
  const error = r.status === 0 || r.status >= 500;
  if (error) attributes.push({ key: 'error', value: { boolValue: true } });
  exporter.queue({
    traceId: span.traceId,
    spanId: span.spanId,
    ...(span.parentSpanId ? { parentSpanId: span.parentSpanId } : {}),
    name: `${l.destination_service}:${port}/*`,
    kind: span.kind === 'server' ? 2 : 3,
    startTimeUnixNano: String(span.startNs),
    endTimeUnixNano: String(process.hrtime.bigint() - hrOffset + epochNs),
    attributes,
    status: error ? { code: 2, message: `${r.status} ${r.flags}` } : { code: 0 },
  });
}

/**
 * A custom tag's value: the literal, the request header as received, or the node proxy's
 * environment variable (the agent's: a node proxy has no pod environment), else the default.
 */
export function customTagValue(tag: CustomTag, r: Pick<EndedRequest, 'header'>): string {
  if (tag.kind === 'literal') return tag.value;
  const v = tag.kind === 'header' ? r.header(tag.value) : process.env[tag.value];
  return v === undefined || v === '' ? tag.defaultValue : v;
}

/** Batches spans and POSTs them to the collector as OTLP/HTTP JSON. */
class OtlpExporter {
  private queued: object[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(
    readonly endpoint: string,
    readonly node: string,
  ) {}

  queue(span: object): void {
    if (this.queued.length >= MAX_QUEUED) return void spansDropped.inc({ reason: 'queue' });
    this.queued.push(span);
    if (this.queued.length >= BATCH) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), FLUSH_MS);
      this.timer.unref();
    }
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queued.length === 0 || this.inFlight) return this.inFlight ?? Promise.resolve();
    const spans = this.queued.splice(0, BATCH);
    const body = JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: [str('service.name', 'nodemesh-node-proxy'), str('k8s.node.name', this.node)] },
          scopeSpans: [{ scope: { name: 'nodemesh' }, spans }],
        },
      ],
    });
    this.inFlight = fetch(this.endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(EXPORT_TIMEOUT_MS) })
      .then(
        async (res) => {
          await res.arrayBuffer().catch(() => undefined);
          if (res.ok) spansExported.inc(spans.length);
          else {
            spansDropped.inc({ reason: 'export' }, spans.length);
            log.debug({ status: res.status }, 'collector refused spans');
          }
        },
        (err: unknown) => {
          spansDropped.inc({ reason: 'export' }, spans.length);
          log.debug({ err: (err as Error).message }, 'collector unreachable');
        },
      )
      .finally(() => {
        this.inFlight = undefined;
        if (this.queued.length > 0 && !this.timer) {
          this.timer = setTimeout(() => this.flush(), FLUSH_MS);
          this.timer.unref();
        }
      });
    return this.inFlight;
  }
}

let exporter: OtlpExporter | undefined;

export function configureTracing(o: { endpoint: string; node: string }): void {
  exporter = o.endpoint ? new OtlpExporter(o.endpoint, o.node) : undefined;
}

/** Sends what is queued (one batch), then stops exporting. */
export async function closeTracing(): Promise<void> {
  const e = exporter;
  exporter = undefined;
  await e?.flush();
}
