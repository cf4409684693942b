// Istio's Telemetry resource, as the agent applies it: for the workload of the reporter that
// saw a request (the client's at reporter="source", the server's at "destination"), the most
// specific Telemetry that speaks wins — a workload's (selector matching its labels, in its
// namespace; the oldest when several match), then its namespace's (no selector), then the
// mesh's (the root namespace, istio-system). An entry speaks for a reporter when its
// match.mode covers it (CLIENT: source, SERVER: destination, CLIENT_AND_SERVER: both).
// Without any, the agent's flags say (access logs off and 1 % trace sampling by default, as
// Istio's defaults).
//   accessLogging: [{providers: [{name: envoy}], filter: {expression: 'response.code >= 400'}}]
//   accessLogging: [{disabled: true, match: {mode: CLIENT}}]
//   tracing: [{randomSamplingPercentage: 10, customTags: {team: {literal: {value: shop}}}}]
//   metrics: [{overrides: [{match: {metric: REQUEST_COUNT, mode: SERVER}, disabled: true}]}]
// Metrics overrides merge as Istio merges them: the mesh's first, then the namespace's, then
// the workload's, each override on what the ones before it left (disabled set or cleared,
// labels removed). The control plane compiles the resources into the snapshot
// (TelemetryPolicy) and checks them; the agent resolves per workload and reporter once per
// snapshot and caches it.
import { ISTIO_METRIC_NAMES, modeCovers, type CustomTag, type IstioMetric, type TelemetryPolicy } from '../../control/api/snapshot-telemetry.js';
import { compileFilter, type CompiledFilter } from '../../control/api/telemetry-filter.js';

/** The workload whose Telemetry applies (undefined: a peer outside the mesh: the mesh's). */
export type Subject = { readonly namespace: string; readonly labels: Record<string, string> } | undefined;
export type Reporter = 'source' | 'destination';

export interface AccessLogRule {
  filter: CompiledFilter | undefined;
}

export interface TracingRule {
  /** 0–100 */
  samplingPercent: number;
  /** span attributes from customTags */
  customTags: readonly CustomTag[];
}

/** What the metrics overrides leave of one reporter's metrics. */
export interface MetricsRule {
  /** metrics not reported */
  readonly disabled: ReadonlySet<IstioMetric>;
  /** labels dropped (reported empty, which Prometheus reads as absent), per metric */
  readonly removed: ReadonlyMap<IstioMetric, readonly string[]>;
}
/** No override: every metric with every label. */
export const ALL_METRICS_RULE: MetricsRule = { disabled: new Set(), removed: new Map() };

export interface TelemetryDefaults {
  /** access logs for workloads no Telemetry speaks of */
  accessLog: boolean;
  /** sampling for workloads no Telemetry speaks of (Istio's default: 1 %) */
  samplingPercent: number;
}

let defaults: TelemetryDefaults = { accessLog: false, samplingPercent: 1 };
let policies: readonly CompiledPolicy[] = [];
let rootNamespace = 'istio-system';
let generation = 0;

interface CompiledPolicy {
  source: TelemetryPolicy;
  /** the accessLogging entries' filters, by index */
  filters: (CompiledFilter | undefined)[];
}

interface Resolved {
  generation: number;
  accessLog: AccessLogRule | undefined;
  tracing: TracingRule;
  metrics: MetricsRule;
}
const resolved = { source: new WeakMap<object, Resolved>(), destination: new WeakMap<object, Resolved>() };
const meshResolved: Partial<Record<Reporter, Resolved>> = {};

export function setTelemetryDefaults(d: Partial<TelemetryDefaults>): void {
  defaults = { ...defaults, ...d };
  generation++;
}

/** Moves when the policies or defaults change: what callers cached from them is stale. */
export function telemetryGeneration(): number {
  return generation;
}

/** The snapshot's Telemetry policies (sorted oldest first by the control plane). */
export function setTelemetryPolicies(list: readonly TelemetryPolicy[], root = 'istio-system'): void {
  policies = list.map((p) => ({
    source: p,
    filters: p.accessLogging.map((e) => {
      try {
        return e.filter ? compileFilter(e.filter) : undefined;
      } catch {
        return undefined; // the control plane refused it already; never here
      }
    }),
  }));
  rootNamespace = root;
  generation++;
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

/** The policies that apply to a subject, most specific first. */
function chainOf(subject: Subject): CompiledPolicy[] {
  const chain: CompiledPolicy[] = [];
  if (subject) {
    for (const p of policies) {
      const s = p.source;
      if (s.namespace === subject.namespace && Object.keys(s.selector).length > 0 && matches(s.selector, subject.labels)) {
        chain.push(p);
        break;
      }
    }
    const ns = policies.find((p) => p.source.namespace === subject.namespace && Object.keys(p.source.selector).length === 0);
    if (ns) chain.push(ns);
  }
  const mesh = policies.find((p) => p.source.namespace === rootNamespace && Object.keys(p.source.selector).length === 0);
  if (mesh) chain.push(mesh);
  return chain;
}

function resolve(subject: Subject, reporter: Reporter): Resolved {
  const chain = chainOf(subject);

  let accessLog: AccessLogRule | undefined = defaults.accessLog ? { filter: undefined } : undefined;
  for (const p of chain) {
    const i = p.source.accessLogging.findIndex((e) => modeCovers(e.mode, reporter));
    if (i < 0) continue;
    accessLog = p.source.accessLogging[i]!.disabled ? undefined : { filter: p.filters[i] };
    break;
  }

  // sampling from the most specific entry that sets it (or disables spans); custom tags likewise
  let samplingPercent: number | undefined;
  let customTags: readonly CustomTag[] | undefined;
  for (const p of chain) {
    for (const e of p.source.tracing) {
      if (!modeCovers(e.mode, reporter)) continue;
      if (samplingPercent === undefined && (e.disabled || e.randomSamplingPercentage >= 0)) samplingPercent = e.disabled ? 0 : e.randomSamplingPercentage;
      if (customTags === undefined && e.customTags.length > 0) customTags = e.customTags;
    }
  }

  const disabled = new Set<IstioMetric>();
  const removed = new Map<IstioMetric, string[]>();
  for (const p of [...chain].reverse()) {
    for (const o of p.source.metricsOverrides) {
      if (!modeCovers(o.mode, reporter)) continue;
      const metrics = o.metric === 'ALL_METRICS' ? (Object.keys(ISTIO_METRIC_NAMES) as IstioMetric[]) : [o.metric as IstioMetric];
      for (const m of metrics) {
        if (o.disabled === true) disabled.add(m);
        if (o.disabled === false) disabled.delete(m);
        if (o.removeTags.length) removed.set(m, [...new Set([...(removed.get(m) ?? []), ...o.removeTags])]);
      }
    }
  }
  const metrics = disabled.size || removed.size ? { disabled, removed } : ALL_METRICS_RULE;
  return { generation, accessLog, tracing: { samplingPercent: samplingPercent ?? defaults.samplingPercent, customTags: customTags ?? [] }, metrics };
}

function rules(subject: Subject, reporter: Reporter): Resolved {
  if (!subject) {
    let r = meshResolved[reporter];
    if (!r || r.generation !== generation) meshResolved[reporter] = r = resolve(undefined, reporter);
    return r;
  }
  const cache = resolved[reporter];
  let r = cache.get(subject);
  if (!r || r.generation !== generation) cache.set(subject, (r = resolve(subject, reporter)));
  return r;
}

/** The access-log rule of a workload at a reporter: undefined when it logs nothing. */
export function accessLogRule(subject: Subject, reporter: Reporter = 'source'): AccessLogRule | undefined {
  return rules(subject, reporter).accessLog;
}

export function tracingRule(subject: Subject, reporter: Reporter = 'source'): TracingRule {
  return rules(subject, reporter).tracing;
}

export function metricsRule(subject: Subject, reporter: Reporter): MetricsRule {
  return rules(subject, reporter).metrics;
}

/**
 * The labels one metric is reported with under `rule`: undefined when the metric is
 * disabled, `labels` itself when nothing is removed, else a copy with the removed labels
 * empty (an empty label is no label to Prometheus).
 */
export function metricLabels<L extends Record<string, string>>(rule: MetricsRule, metric: IstioMetric, labels: L): L | undefined {
  if (rule === ALL_METRICS_RULE) return labels;
  if (rule.disabled.has(metric)) return undefined;
  const drop = rule.removed.get(metric);
  if (!drop) return labels;
  const copy = { ...labels };
  for (const k of drop) if (k in copy) (copy as Record<string, string>)[k] = '';
  return copy;
}
