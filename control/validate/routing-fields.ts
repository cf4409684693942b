// Field readers shared by the Istio networking and Gateway API validators: durations in both
// formats, RE2 regular expressions, header names and values, percentages, unknown fields.
// Each throws a FieldProblem naming the field and saying what was expected.
import type { FieldPath } from '../source/files.js';
import { FieldProblem, describeValue, isObj, type Obj } from './fields.js';

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

/** A percentage 0-100 (a number; Istio's Percent.value). */
export function percent(v: unknown, path: FieldPath): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100)
    throw new FieldProblem(path, `expected a percentage 0-100, found ${describeValue(v)}`);
  // Istio: "percentage %v is neither 0.0, nor in range [0.0001, 100.0]"
  if (v > 0 && v < 0.0001) throw new FieldProblem(path, `percentage ${v} is neither 0 nor in the range 0.0001-100`);
  return v;
}

/** Optional non-negative integer (Istio's int32/uint32 counts); absent → undefined. */
export function optCount(v: unknown, path: FieldPath, max = 2147483647): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    throw new FieldProblem(path, `expected a whole number 0-${max}, found ${describeValue(v)}`);
  return v;
}

/** Istio's UInt32Value wrappers are written as a plain number (or `{value: n}` in JSON form). */
export function optWrappedCount(v: unknown, path: FieldPath): number | undefined {
  if (isObj(v) && 'value' in v) return optCount(v.value, [...path, 'value'], 4294967295);
  return optCount(v, path, 4294967295);
}

/**
 * Rejects fields the API does not have (a typo such as `retry` for `retries` would otherwise
 * be a silent no-op), suggesting the closest known one.
 */
export function knownFields(o: Obj, path: FieldPath, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const near = closest(k, known);
    throw new FieldProblem([...path, k], `unknown field${near ? `; did you mean ${near}?` : ''} (known: ${known.join(', ')})`);
  }
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.ceil(word.length / 2)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = cur;
  }
  return prev[b.length]!;
}

// RFC 7230 token characters: what Istio (validHeaderNameRegex) and Gateway API (HTTPHeaderName) accept.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$/;

export function headerName(v: unknown, path: FieldPath, opts: { pseudo?: boolean } = {}): string {
  if (typeof v !== 'string' || v === '') throw new FieldProblem(path, `expected a header name, found ${describeValue(v)}`);
  if (opts.pseudo && /^:(method|scheme|authority|path|status)$/.test(v)) return v.toLowerCase();
  if (v.length > 256 || !HEADER_NAME.test(v))
    throw new FieldProblem(path, `${JSON.stringify(v)} is not a valid header name: letters, digits and !#$%&'*+-.^_\`|~ only (RFC 7230 token)`);
  return v.toLowerCase();
}

/** A header value: no control characters (Istio's ValidateHTTPHeaderValue). */
export function headerValue(v: unknown, path: FieldPath): string {
  if (typeof v !== 'string') throw new FieldProblem(path, `expected a string, found ${describeValue(v)}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(v)) throw new FieldProblem(path, 'a header value cannot contain control characters or line breaks');
  return v;
}

/** metadata.creationTimestamp as an ISO string ("" when absent), for "oldest wins" ordering. */
export function creationTimestamp(o: Obj): string {
  const m = o.metadata as Obj;
  const ts = m.creationTimestamp;
  if (ts instanceof Date) return ts.toISOString();
  if (typeof ts !== 'string' || ts === '') return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) throw new FieldProblem(['metadata', 'creationTimestamp'], `expected an RFC 3339 time such as "2024-01-01T00:00:00Z", found ${JSON.stringify(ts)}`);
  return d.toISOString();
}

