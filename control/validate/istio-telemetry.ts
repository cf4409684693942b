// Istio's Telemetry (telemetry.istio.io/v1, v1alpha1), as nodemesh applies it:
// - accessLogging entries (providers, disabled, filter.expression, match.mode);
// - tracing entries (providers, randomSamplingPercentage, disableSpanReporting, match.mode,
//   customTags: literal, header, environment);
// - metrics overrides of Istio's standard metrics (match.metric or ALL_METRICS, match.mode,
//   disabled, tagOverrides REMOVE) — and a selector.
// match.mode CLIENT is the source reporter (the client's node proxy), SERVER the destination
// reporter. The filter is read here with the agent's own reader (control/api/telemetry-filter.ts),
// so a filter the agent could not evaluate is refused with its position, never half-applied.
// Refused at their field, since nodemesh cannot honour them and ignoring them would mislead:
// tagOverrides UPSERT (a label from a CEL expression: the metrics keep Istio's label set),
// removing a label a metric does not have, and customMetric. Said in the status (notes):
// what is accepted with nothing to apply (GRPC_* message metrics nodemesh does not report,
// reportingInterval, other metrics providers, targetRefs).
import type { TelemetrySpec } from '../model/telemetry.js';
import { compileFilter } from '../api/telemetry-filter.js';
import {
  CUSTOM_TAG_KINDS,
  HTTP_ONLY_LABELS,
  ISTIO_LABELS,
  ISTIO_METRIC_NAMES,
  TELEMETRY_MODES,
  type AccessLoggingEntry,
  type CustomTag,
  type MetricsOverride,
  type TelemetryMode,
  type TracingEntry,
} from '../api/snapshot-telemetry.js';
import type { ValidatedBody } from '../model/resources.js';
import { FieldProblem, knownFields, metadata, object, oneOf, optArray, optBoolean, optObject, optString, optTimestamp, string, workloadSelectorLabels, type Obj } from './fields.js';
import { dns1123Subdomain } from './names.js';

/** The providers nodemesh has: Istio's built-in `envoy` (the agent's access log), and any name for tracing (the agent's collector). */
const ACCESS_LOG_PROVIDERS = ['envoy', 'otel', 'opentelemetry'];
/** Istio's metric enum: the standard metrics, ALL_METRICS, and the gRPC message counts nodemesh does not report. */
const METRIC_WORDS = ['ALL_METRICS', ...Object.keys(ISTIO_METRIC_NAMES), 'GRPC_REQUEST_MESSAGES', 'GRPC_RESPONSE_MESSAGES'];
const HTTP_METRICS = ['REQUEST_COUNT', 'REQUEST_DURATION', 'REQUEST_SIZE', 'RESPONSE_SIZE'];
type Path = (string | number)[];

export function validateTelemetry(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const m = metadata(o);
  const s = optObject(o.spec, ['spec']) ?? {};
  knownFields(s, ['spec'], ['selector', 'targetRef', 'targetRefs', 'tracing', 'metrics', 'accessLogging']);
  const notes: string[] = [];
  const selector = workloadSelectorLabels(s.selector, ['spec', 'selector']) ?? {};
  if (s.targetRef !== undefined || s.targetRefs !== undefined) notes.push('targetRefs are not applied yet: use spec.selector');

  const accessLogging = optArray(s.accessLogging, ['spec', 'accessLogging']).map((e, i) => accessLoggingEntry(e, ['spec', 'accessLogging', i], notes));
  const tracing = optArray(s.tracing, ['spec', 'tracing']).map((e, i) => tracingEntry(e, ['spec', 'tracing', i], notes));
  const metricsOverrides = optArray(s.metrics, ['spec', 'metrics']).flatMap((e, i) => metricsEntry(e, ['spec', 'metrics', i], notes));
  const policy: TelemetrySpec['policy'] = { selector, accessLogging, tracing, metricsOverrides };
  const spec: TelemetrySpec = { policy, createdAt: optTimestamp(m.creationTimestamp, ['metadata', 'creationTimestamp']) ?? 0 };
  return { body: { kind: 'Telemetry', spec }, notes };
}

/** match: {mode} of an entry (metrics' match also names the metric: metricsEntry). */
function matchMode(v: unknown, at: Path, known: string[] = ['mode']): { mode: TelemetryMode; match: Obj | undefined } {
  const match = optObject(v, at);
  if (match) knownFields(match, at, known);
  return { mode: oneOf(match?.mode, [...at, 'mode'], TELEMETRY_MODES, 'CLIENT_AND_SERVER'), match };
}

function accessLoggingEntry(v: unknown, at: Path, notes: string[]): AccessLoggingEntry {
  const e = object(v, at);
  knownFields(e, at, ['match', 'providers', 'disabled', 'filter']);
  const providers = providerNames(e.providers, [...at, 'providers']);
  for (const p of providers)
    if (!ACCESS_LOG_PROVIDERS.includes(p)) notes.push(`access-log provider ${p} is written as the agent's access log (--access-log-file): nodemesh has no MeshConfig extensionProviders`);
  let filter = '';
  const f = optObject(e.filter, [...at, 'filter']);
  if (f) {
    knownFields(f, [...at, 'filter'], ['expression']);
    filter = optString(f.expression, [...at, 'filter', 'expression']) ?? '';
    try {
      if (filter) compileFilter(filter);
    } catch (err) {
      throw new FieldProblem([...at, 'filter', 'expression'], (err as Error).message);
    }
  }
  const { mode } = matchMode(e.match, [...at, 'match']);
  return { disabled: optBoolean(e.disabled, [...at, 'disabled']) ?? false, filter, providers, mode };
}

function tracingEntry(v: unknown, at: Path, notes: string[]): TracingEntry {
  const e = object(v, at);
  knownFields(e, at, ['match', 'providers', 'randomSamplingPercentage', 'disableSpanReporting', 'customTags', 'useRequestIdForTraceSampling', 'enableIstioTags']);
  const pct = e.randomSamplingPercentage;
  if (pct !== undefined && pct !== null && (typeof pct !== 'number' || !(pct >= 0 && pct <= 100)))
    throw new FieldProblem([...at, 'randomSamplingPercentage'], `expected a percentage from 0 to 100, found ${JSON.stringify(pct)}`);
  if (optBoolean(e.useRequestIdForTraceSampling, [...at, 'useRequestIdForTraceSampling']) !== undefined)
    notes.push('tracing.useRequestIdForTraceSampling is not applied: sampling is random (or the caller’s decision)');
  if (optBoolean(e.enableIstioTags, [...at, 'enableIstioTags']) === false) notes.push('tracing.enableIstioTags: false is not applied: spans always carry the mesh attributes');
  const customTags: CustomTag[] = [];
  const tags = optObject(e.customTags, [...at, 'customTags']) ?? {};
  for (const [tag, def] of Object.entries(tags)) {
    const tat = [...at, 'customTags', tag];
    const d = object(def, tat);
    knownFields(d, tat, [...CUSTOM_TAG_KINDS]);
    const kinds = CUSTOM_TAG_KINDS.filter((k) => d[k] !== undefined && d[k] !== null);
    if (kinds.length !== 1) throw new FieldProblem(tat, `expected exactly one of literal, header, environment, found ${kinds.length ? kinds.join(', ') : 'none'}`);
    const kind = kinds[0]!;
    const body = object(d[kind], [...tat, kind]);
    if (kind === 'literal') {
      knownFields(body, [...tat, kind], ['value']);
      customTags.push({ name: tag, kind, value: string(body.value, [...tat, kind, 'value']), defaultValue: '' });
    } else {
      knownFields(body, [...tat, kind], ['name', 'defaultValue']);
      const n = string(body.name, [...tat, kind, 'name']);
      if (!n) throw new FieldProblem([...tat, kind, 'name'], `is required: the ${kind === 'header' ? 'request header' : 'environment variable'} to read`);
      customTags.push({ name: tag, kind, value: kind === 'header' ? n.toLowerCase() : n, defaultValue: optString(body.defaultValue, [...tat, kind, 'defaultValue']) ?? '' });
    }
  }
  const { mode } = matchMode(e.match, [...at, 'match']);
  return {
    disabled: optBoolean(e.disableSpanReporting, [...at, 'disableSpanReporting']) ?? false,
    randomSamplingPercentage: typeof pct === 'number' ? pct : -1,
    providers: providerNames(e.providers, [...at, 'providers']),
    mode,
    customTags,
  };
}

function metricsEntry(v: unknown, at: Path, notes: string[]): MetricsOverride[] {
  const e = object(v, at);
  knownFields(e, at, ['providers', 'overrides', 'reportingInterval']);
  for (const p of providerNames(e.providers, [...at, 'providers']))
    if (p !== 'prometheus') notes.push(`metrics provider ${p}: the node proxies' metrics are Prometheus's (/metrics on 15020); the overrides apply there`);
  if (e.reportingInterval !== undefined) notes.push('metrics.reportingInterval is not applied: Prometheus pulls /metrics when it scrapes');
  const out: MetricsOverride[] = [];
  optArray(e.overrides, [...at, 'overrides']).forEach((ov, i) => {
    const oat = [...at, 'overrides', i];
    const o = object(ov, oat);
    knownFields(o, oat, ['match', 'disabled', 'tagOverrides']);
    const { mode, match } = matchMode(o.match, [...oat, 'match'], ['metric', 'customMetric', 'mode']);
    if (match?.customMetric !== undefined)
      throw new FieldProblem([...oat, 'match', 'customMetric'], 'nodemesh reports Istio’s standard metrics only, so there is no custom metric to override; use match.metric (REQUEST_COUNT, …, or ALL_METRICS)');
    const metric = oneOf(match?.metric, [...oat, 'match', 'metric'], METRIC_WORDS, 'ALL_METRICS');
    const disabled = optBoolean(o.disabled, [...oat, 'disabled']);
    const removeTags: string[] = [];
    const tagOverrides = optObject(o.tagOverrides, [...oat, 'tagOverrides']) ?? {};
    const labels: readonly string[] = metric === 'ALL_METRICS' ? ISTIO_LABELS : HTTP_METRICS.includes(metric) ? [...ISTIO_LABELS, ...HTTP_ONLY_LABELS] : ISTIO_LABELS;
    for (const [tag, t] of Object.entries(tagOverrides)) {
      const tat = [...oat, 'tagOverrides', tag];
      const op = object(t ?? {}, tat);
      knownFields(op, tat, ['operation', 'value']);
      const operation = oneOf(op.operation, [...tat, 'operation'], ['UPSERT', 'REMOVE'], 'UPSERT');
      if (operation === 'UPSERT')
        throw new FieldProblem(tat, 'operation UPSERT (the default) is not supported: nodemesh’s metrics keep Istio’s label set, so a label cannot be added or rewritten from an expression; use operation: REMOVE, or drop this override');
      if (!labels.includes(tag))
        throw new FieldProblem(tat, `${metric} has no label ${tag}; its labels are ${labels.join(', ')}${metric === 'ALL_METRICS' ? ' (response_code and grpc_response_status: name a request metric)' : ''}`);
      removeTags.push(tag);
    }
    if (metric.startsWith('GRPC_')) {
      notes.push(`metrics override of ${metric} has nothing to apply to: nodemesh does not report gRPC message counts`);
      return;
    }
    out.push({ metric, mode, ...(disabled !== undefined ? { disabled } : {}), removeTags });
  });
  return out;
}

function providerNames(v: unknown, at: Path): string[] {
  return optArray(v, at).map((p, i) => {
    const o = object(p, [...at, i]);
    knownFields(o, [...at, i], ['name']);
    const n = optString(o.name, [...at, i, 'name']);
    if (!n) throw new FieldProblem([...at, i, 'name'], 'is required: the provider’s name (envoy for the access log)');
    return n;
  });
}
