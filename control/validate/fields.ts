// Typed readers for the fields of a document, shared by every kind's validator. Each reader
// returns the value in the shape nodemesh uses or throws a FieldProblem naming the field path
// and saying what is wrong; validate.ts turns it into a ConfigError with file, line and
// resource. YAML `null` (an empty value such as `labels:`) counts as absent, as in Kubernetes.
//
// One wording per mistake, whichever kind it is found in:
//   wrong value     `expected <what>, found <value>` (describeValue says what was found)
//   missing value   `is required` or `is required: expected <what>`
//   bad enum value  `expected one of A, B, C, found <value>`
//   unknown field   `unknown field; did you mean <closest>? expected one of A, B, C`
//   too many items  `at most N <items>, found M`
// Sentences quoted from Istio's or Gateway API's own validation keep their wording, so that
// a message can be looked up in their documentation.
import type { FieldPath } from '../model/source-document.js';

export class FieldProblem extends Error {
  readonly path: FieldPath;
  constructor(path: FieldPath, detail: string) {
    super(detail);
    this.name = 'FieldProblem';
    this.path = path;
  }
}

/** What a wrong value is, for messages: `8080 (a number)`, `a list`. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `${JSON.stringify(v)} (a string)`;
  if (typeof v === 'boolean') return `${v} (a boolean; quote it if you mean the string: "${v}")`;
  return `${String(v)} (a ${typeof v})`;
}

function absent(v: unknown): v is null | undefined {
  return v === null || v === undefined;
}

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---- mappings and lists ---------------------------------------------------------------

export function object(v: unknown, path: FieldPath): Obj {
  if (absent(v)) throw new FieldProblem(path, 'is required: expected a mapping');
  if (!isObj(v)) throw new FieldProblem(path, `expected a mapping, found ${describeValue(v)}`);
  return v;
}

export function optObject(v: unknown, path: FieldPath): Obj | undefined {
  return absent(v) ? undefined : object(v, path);
}

export function optArray(v: unknown, path: FieldPath): unknown[] {
  if (absent(v)) return [];
  if (!Array.isArray(v)) throw new FieldProblem(path, `expected a list, found ${describeValue(v)}`);
  return v;
}

/** Rejects a list longer than the API allows. */
export function maxItems(list: readonly unknown[], path: FieldPath, max: number, items: string): void {
  if (list.length > max) throw new FieldProblem(path, `at most ${max} ${items}, found ${list.length}`);
}

/**
 * Rejects fields the API does not have (a typo such as `retry` for `retries`, or `rule` for
 * `rules`, would otherwise be a silent no-op), suggesting the closest known one.
 */
export function knownFields(o: Obj, path: FieldPath, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const near = closest(k, known);
    throw new FieldProblem([...path, k], `unknown field; ${near ? `did you mean ${near}? ` : ''}expected one of ${known.join(', ')}`);
  }
}

/** The candidate nearest to `word` by edit distance, when near enough to be a typo of it. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
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

// ---- strings, booleans, enums -----------------------------------------------------------

export function string(v: unknown, path: FieldPath): string {
  if (absent(v)) throw new FieldProblem(path, 'is required: expected a string');
  if (typeof v !== 'string') throw new FieldProblem(path, `expected a string, found ${describeValue(v)}`);
  return v;
}

export function optString(v: unknown, path: FieldPath): string | undefined {
  return absent(v) ? undefined : string(v, path);
}

export function nonEmptyString(v: unknown, path: FieldPath): string {
  if (typeof v !== 'string' || v === '') throw new FieldProblem(path, `expected a non-empty string, found ${describeValue(v)}`);
  return v;
}

export function optBoolean(v: unknown, path: FieldPath): boolean | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== 'boolean') throw new FieldProblem(path, `expected true or false, found ${describeValue(v)}`);
  return v;
}

/** One of `allowed`; absent → `dflt` (undefined without one). */
export function oneOf<T extends string>(v: unknown, path: FieldPath, allowed: readonly T[], dflt: T): T;
export function oneOf<T extends string>(v: unknown, path: FieldPath, allowed: readonly T[]): T | undefined;
export function oneOf<T extends string>(v: unknown, path: FieldPath, allowed: readonly T[], dflt?: T): T | undefined {
  if (absent(v)) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))
    throw new FieldProblem(path, `expected one of ${allowed.join(', ')}, found ${describeValue(v)}`);
  return v as T;
}

/** One of `allowed`, required. */
export function requiredOneOf<T extends string>(v: unknown, path: FieldPath, allowed: readonly T[]): T {
  if (absent(v)) throw new FieldProblem(path, `is required: expected one of ${allowed.join(', ')}`);
  return oneOf(v, path, allowed)!;
}

/** A map of string to string (labels, annotations, selectors); absent → {}. */
export function stringMap(v: unknown, path: FieldPath): Record<string, string> {
  if (absent(v)) return {};
  if (!isObj(v)) throw new FieldProblem(path, `expected a mapping of strings, found ${describeValue(v)}`);
  const out: Record<string, string> = {};
  for (const k of Object.keys(v).sort()) {
    const val = v[k];
    if (typeof val !== 'string') throw new FieldProblem([...path, k], `expected a string, found ${describeValue(val)}`);
    out[k] = val;
  }
  return out;
}

/** A list of strings; absent → []. `check` sees each item in turn. */
export function stringList(v: unknown, path: FieldPath, check?: (item: string, path: FieldPath) => void): string[] {
  return optArray(v, path).map((item, i) => {
    if (typeof item !== 'string') throw new FieldProblem([...path, i], `expected a string, found ${describeValue(item)}`);
    check?.(item, [...path, i]);
    return item;
  });
}

// ---- numbers ------------------------------------------------------------------------------

export function integer(v: unknown, path: FieldPath, min: number, max: number): number {
  if (absent(v)) throw new FieldProblem(path, `is required: expected an integer ${min}-${max}`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new FieldProblem(path, `expected an integer ${min}-${max}, found ${describeValue(v)}`);
  return v;
}

/** An optional integer min-max; absent → undefined. */
export function optInteger(v: unknown, path: FieldPath, min: number, max: number): number | undefined {
  return absent(v) ? undefined : integer(v, path, min, max);
}

/** Optional non-negative integer (Istio's int32/uint32 counts); absent → undefined. */
export function optCount(v: unknown, path: FieldPath, max = 2147483647): number | undefined {
  return optInteger(v, path, 0, max);
}

/** Istio's UInt32Value wrappers are written as a plain number (or `{value: n}` in JSON form). */
export function optWrappedCount(v: unknown, path: FieldPath): number | undefined {
  if (isObj(v) && 'value' in v) return optCount(v.value, [...path, 'value'], 4294967295);
  return optCount(v, path, 4294967295);
}

/** A percentage 0-100 (a number; Istio's Percent.value). */
export function percent(v: unknown, path: FieldPath): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100)
    throw new FieldProblem(path, `expected a percentage 0-100, found ${describeValue(v)}`);
  // Istio: "percentage %v is neither 0.0, nor in range [0.0001, 100.0]"
  if (v > 0 && v < 0.0001) throw new FieldProblem(path, `percentage ${v} is neither 0 nor in the range 0.0001-100`);
  return v;
}

// ---- metadata and selectors -----------------------------------------------------------------

/** The document's metadata (the source checked it is a mapping with a name). */
export function metadata(o: Obj): Obj {
  return isObj(o.metadata) ? o.metadata : {};
}

/**
 * An RFC 3339 time in ms since the epoch; absent → undefined. YAML may already have turned
 * an unquoted timestamp into a Date.
 */
export function optTimestamp(v: unknown, path: FieldPath): number | undefined {
  if (absent(v)) return undefined;
  const t = v instanceof Date ? v.getTime() : typeof v === 'string' ? Date.parse(v) : NaN;
  if (!Number.isFinite(t)) throw new FieldProblem(path, `expected an RFC 3339 time such as "2024-01-01T00:00:00Z", found ${describeValue(v)}`);
  return t;
}

/** An Istio WorkloadSelector (`{matchLabels: {...}}`): its labels; undefined when absent. */
export function workloadSelectorLabels(v: unknown, path: FieldPath): Record<string, string> | undefined {
  const sel = optObject(v, path);
  if (!sel) return undefined;
  knownFields(sel, path, ['matchLabels']);
  return stringMap(sel.matchLabels, [...path, 'matchLabels']);
}

/**
 * metadata.creationTimestamp as an ISO string ("" when absent), the "oldest wins" order of
 * the routing kinds. They ignore a value that is not a string, as they always have: it only
 * breaks ties.
 */
export function creationTimestampIso(o: Obj): string {
  const ts = metadata(o).creationTimestamp;
  if (!(ts instanceof Date) && (typeof ts !== 'string' || ts === '')) return '';
  return new Date(optTimestamp(ts, ['metadata', 'creationTimestamp'])!).toISOString();
}
