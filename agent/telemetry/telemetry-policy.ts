// Istio's Telemetry resource, as the agent applies it: for the workload of the reporter that
// saw a request (the client's at reporter="source", the server's at "destination"), the most
// specific Telemetry that sets a field wins — a workload's (selector matching its labels, in
// its namespace; the oldest when several match), then its namespace's (no selector), then
// the mesh's (the root namespace, istio-system). Without any, the agent's flags say
// (access logs off and 1 % trace sampling by default, as Istio's defaults).
//   accessLogging: [{providers: [{name: envoy}], filter: {expression: 'response.code >= 400'}}]
//   accessLogging: [{disabled: true}]
//   tracing: [{randomSamplingPercentage: 10}]
// The control plane compiles the resources into the snapshot (TelemetryPolicy) and checks
// the filters; the agent resolves per workload once per snapshot and caches it.
import type { TelemetryPolicy } from '../../control/api/snapshot-telemetry.js';
import { compileFilter, type CompiledFilter } from '../../control/api/telemetry-filter.js';

/** The workload whose Telemetry applies (undefined: a peer outside the mesh: the mesh's). */
export type Subject = { readonly namespace: string; readonly labels: Record<string, string> } | undefined;

export interface AccessLogRule {
  filter: CompiledFilter | undefined;
}

export interface TracingRule {
  /** 0–100 */
  samplingPercent: number;
}

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
  filter: CompiledFilter | undefined;
}

interface Resolved {
  generation: number;
  accessLog: AccessLogRule | undefined;
  tracing: TracingRule;
}
const resolved = new WeakMap<object, Resolved>();
let meshResolved: Resolved | undefined;

export function setTelemetryDefaults(d: Partial<TelemetryDefaults>): void {
  defaults = { ...defaults, ...d };
  generation++;
}

/** The snapshot's Telemetry policies (sorted oldest first by the control plane). */
export function setTelemetryPolicies(list: readonly TelemetryPolicy[], root = 'istio-system'): void {
  policies = list.map((p) => {
    let filter: CompiledFilter | undefined;
    try {
      filter = p.accessLogging?.filter ? compileFilter(p.accessLogging.filter) : undefined;
    } catch {
      filter = undefined; // the control plane refused it already; never here
    }
    return { source: p, filter };
  });
  rootNamespace = root;
  generation++;
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

function resolve(subject: Subject): Resolved {
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
  const logging = chain.find((p) => p.source.accessLogging);
  const accessLog = logging ? (logging.source.accessLogging!.disabled ? undefined : { filter: logging.filter }) : defaults.accessLog ? { filter: undefined } : undefined;
  const tracing = chain.find((p) => p.source.tracing && (p.source.tracing.disabled || p.source.tracing.randomSamplingPercentage >= 0));
  const samplingPercent = tracing ? (tracing.source.tracing!.disabled ? 0 : tracing.source.tracing!.randomSamplingPercentage) : defaults.samplingPercent;
  return { generation, accessLog, tracing: { samplingPercent } };
}

function rules(subject: Subject): Resolved {
  if (!subject) {
    if (!meshResolved || meshResolved.generation !== generation) meshResolved = resolve(undefined);
    return meshResolved;
  }
  let r = resolved.get(subject);
  if (!r || r.generation !== generation) resolved.set(subject, (r = resolve(subject)));
  return r;
}

/** The access-log rule of a workload: undefined when it logs nothing. */
export function accessLogRule(subject: Subject): AccessLogRule | undefined {
  return rules(subject).accessLog;
}

export function tracingRule(subject: Subject): TracingRule {
  return rules(subject).tracing;
}
