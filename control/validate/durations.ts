// Durations in the two spellings routes use: Istio's (Go's time.ParseDuration) and Gateway
// API's (GEP-2257), in milliseconds, bounded by what a snapshot's uint32 ms fields carry.
import type { FieldPath } from '../model/source-document.js';
import { FieldProblem, describeValue } from './fields.js';

/** Largest duration a snapshot carries in its uint32 millisecond fields (~49.7 days). */
export const MAX_DURATION_MS = 4294967295;

const GO_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const GO_DURATION = /^(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const GO_PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/**
 * An Istio duration ("1.5s", "100ms", "2m", "1h30m": Go's time.ParseDuration syntax, which the
 * CRDs check with CEL `duration(self)`), in milliseconds. Istio's rule (agent.ValidateDuration):
 * "duration must be greater than 1ms" and "only durations to ms precision are supported".
 * `allowZero` for the fields where Istio documents 0s as "disabled".
 */
export function istioDuration(v: unknown, path: FieldPath, opts: { allowZero?: boolean; unbounded?: boolean } = {}): number {
  if (typeof v !== 'string')
    throw new FieldProblem(path, `expected a duration such as "500ms", "1.5s" or "2m", found ${describeValue(v)}`);
  let ms = 0;
  if (v === '0') ms = 0;
  else if (!GO_DURATION.test(v)) throw new FieldProblem(path, `${JSON.stringify(v)} is not a duration: expected a number with a unit (ms, s, m or h), e.g. "500ms", "1.5s", "2m", "1h30m"`);
  else for (const m of v.matchAll(GO_PART)) ms += Number(m[1]) * GO_UNITS_MS[m[2]!]!;
  ms = Math.round(ms * 1e6) / 1e6;
  return checkMs(v, ms, path, opts.allowZero ?? false, opts.unbounded ?? false);
}

const GATEWAY_DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;

/**
 * A Gateway API duration (GEP-2257): `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, e.g. "1h", "500ms",
 * "1m30s". "0s" is allowed: "Setting a timeout to the zero duration (e.g. "0s") SHOULD
 * disable the timeout completely."
 */
export function gatewayDuration(v: unknown, path: FieldPath): number {
  if (typeof v !== 'string' || !GATEWAY_DURATION.test(v))
    throw new FieldProblem(path, `${typeof v === 'string' ? JSON.stringify(v) : describeValue(v)} is not a Gateway API duration: expected up to 4 whole numbers each with a unit h, m, s or ms, e.g. "10s", "500ms", "1m30s"`);
  let ms = 0;
  for (const m of v.matchAll(/([0-9]+)(h|ms|m|s)/g)) ms += Number(m[1]) * GO_UNITS_MS[m[2]!]!;
  return checkMs(v, ms, path, true, false);
}

function checkMs(v: string, ms: number, path: FieldPath, allowZero: boolean, unbounded: boolean): number {
  if (ms === 0 && allowZero) return 0;
  if (ms < 1) throw new FieldProblem(path, `${JSON.stringify(v)} is too short: the duration must be at least 1ms`);
  if (!Number.isInteger(ms)) throw new FieldProblem(path, `${JSON.stringify(v)}: only durations to ms precision are supported`);
  if (ms > MAX_DURATION_MS && !unbounded) throw new FieldProblem(path, `${JSON.stringify(v)} is too long: at most 49 days (${MAX_DURATION_MS}ms)`);
  return ms;
}
