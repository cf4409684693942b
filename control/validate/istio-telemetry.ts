// Istio's Telemetry (telemetry.istio.io/v1, v1alpha1): the parts nodemesh applies — the first
// accessLogging entry (providers, disabled, filter.expression) and the first tracing entry
// (providers, randomSamplingPercentage, disableSpanReporting) — and a selector. The filter
// is read here with the agent's own reader (control/api/telemetry-filter.ts), so a filter the
// agent could not evaluate is refused with its position, never half-applied. Metrics
// overrides and customTags are accepted and said in the status as not applied.
import type { TelemetrySpec } from '../model/telemetry.js';
import { compileFilter } from '../api/telemetry-filter.js';
import type { ValidatedBody } from '../model/resources.js';
import { FieldProblem, knownFields, metadata, object, optArray, optBoolean, optObject, optString, optTimestamp, workloadSelectorLabels, type Obj } from './fields.js';
import { dns1123Subdomain } from './names.js';

/** The providers nodemesh has: Istio's built-in `envoy` (the agent's access log), and any name for tracing (the agent's collector). */
const ACCESS_LOG_PROVIDERS = ['envoy', 'otel', 'opentelemetry'];

export function validateTelemetry(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const m = metadata(o);
  const s = optObject(o.spec, ['spec']) ?? {};
  knownFields(s, ['spec'], ['selector', 'targetRef', 'targetRefs', 'tracing', 'metrics', 'accessLogging']);
  const notes: string[] = [];
  const selector = workloadSelectorLabels(s.selector, ['spec', 'selector']) ?? {};
  if (s.targetRef !== undefined || s.targetRefs !== undefined) notes.push('targetRefs are not applied yet: use spec.selector');
  if (s.metrics !== undefined) notes.push('metrics overrides are not applied: the node proxies report Istio’s standard metrics');

  const policy: TelemetrySpec['policy'] = { selector };
  const logging = optArray(s.accessLogging, ['spec', 'accessLogging']);
  if (logging.length > 1) notes.push('only the first accessLogging entry is applied');
  if (logging.length > 0) {
    const at = ['spec', 'accessLogging', 0];
    const e = object(logging[0], at);
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
    if (e.match !== undefined) notes.push('accessLogging.match is not applied: both reporters log');
    policy.accessLogging = { disabled: optBoolean(e.disabled, [...at, 'disabled']) ?? false, filter, providers };
  }
  const tracing = optArray(s.tracing, ['spec', 'tracing']);
  if (tracing.length > 1) notes.push('only the first tracing entry is applied');
  if (tracing.length > 0) {
    const at = ['spec', 'tracing', 0];
    const e = object(tracing[0], at);
    knownFields(e, at, ['match', 'providers', 'randomSamplingPercentage', 'disableSpanReporting', 'customTags', 'useRequestIdForTraceSampling', 'enableIstioTags']);
    const pct = e.randomSamplingPercentage;
    if (pct !== undefined && pct !== null && (typeof pct !== 'number' || !(pct >= 0 && pct <= 100)))
      throw new FieldProblem([...at, 'randomSamplingPercentage'], `expected a percentage from 0 to 100, found ${JSON.stringify(pct)}`);
    if (e.customTags !== undefined) notes.push('tracing.customTags are not applied');
    policy.tracing = {
      disabled: optBoolean(e.disableSpanReporting, [...at, 'disableSpanReporting']) ?? false,
      randomSamplingPercentage: typeof pct === 'number' ? pct : -1,
      providers: providerNames(e.providers, [...at, 'providers']),
    };
  }
  const spec: TelemetrySpec = { policy, createdAt: optTimestamp(m.creationTimestamp, ['metadata', 'creationTimestamp']) ?? 0 };
  return { body: { kind: 'Telemetry', spec }, notes };
}

function providerNames(v: unknown, at: (string | number)[]): string[] {
  return optArray(v, at).map((p, i) => {
    const o = object(p, [...at, i]);
    knownFields(o, [...at, i], ['name']);
    const n = optString(o.name, [...at, i, 'name']);
    if (!n) throw new FieldProblem([...at, i, 'name'], 'is required: the provider’s name (envoy for the access log)');
    return n;
  });
}
