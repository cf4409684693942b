// The benchmark's arithmetic, one place: percentiles of a run's samples (nearest rank, as
// HdrHistogram and wrk2 report them: every reported value is one that was measured), and
// what is made of several rounds: the median, the spread, ratios taken within each round.
// Pure; the unit test (test/unit/bench-stats.test.ts) checks it against a reference model.

/** The samples sorted ascending, as a new array (the input is left alone). */
export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/**
 * The p-th percentile (0 ≤ p ≤ 100) of ascending samples, by nearest rank: the smallest
 * sample with at least p % of the samples at or below it. NaN when there is none.
 */
export function percentile(ascending: ArrayLike<number>, p: number): number {
  const n = ascending.length;
  if (n === 0) return NaN;
  if (p <= 0) return ascending[0]!;
  if (p >= 100) return ascending[n - 1]!;
  // p / 100 · n computed as p · n / 100: 99.9 / 100 is not exact in binary, 99.9 · n / 100 less often off
  const rank = Math.ceil((p * n) / 100 - 1e-9);
  return ascending[Math.min(n, Math.max(1, rank)) - 1]!;
}

export interface Percentiles {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** The latency summary every scenario reports. */
export function summarize(values: ArrayLike<number>): Percentiles {
  const s = sorted(values);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    p999: percentile(s, 99.9),
    max: percentile(s, 100),
  };
}

/** The median of the finite values (the mean of the middle two for an even count); NaN when none. */
export function median(values: readonly number[]): number {
  const s = sorted(values.filter(Number.isFinite));
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** What the rounds of one number did: median, range, and the range relative to the median. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** (max − min) / |median|: 0.1 means the rounds spread over 10 % of the median */
  relative: number;
  rounds: number;
}

export function spread(values: readonly number[]): Spread {
  const finite = values.filter(Number.isFinite);
  const m = median(finite);
  if (finite.length === 0) return { median: NaN, min: NaN, max: NaN, relative: NaN, rounds: 0 };
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  return { median: m, min, max, relative: m === 0 ? (max === min ? 0 : Infinity) : (max - min) / Math.abs(m), rounds: finite.length };
}

/**
 * a[r] / b[r] for each round r where both ran, then their median: a ratio taken within a
 * round compares two variants under the same load on the machine, which a ratio of two
 * medians (taken from different rounds) does not.
 */
export function roundRatios(a: readonly number[], b: readonly number[]): Spread {
  const ratios: number[] = [];
  for (let r = 0; r < Math.min(a.length, b.length); r++) {
    const x = a[r]!;
    const y = b[r]!;
    if (Number.isFinite(x) && Number.isFinite(y) && y !== 0) ratios.push(x / y);
  }
  return spread(ratios);
}

/** a[r] − b[r] per round, then their median and range (added latency over a baseline). */
export function roundDifferences(a: readonly number[], b: readonly number[]): Spread {
  const diffs: number[] = [];
  for (let r = 0; r < Math.min(a.length, b.length); r++) {
    const x = a[r]!;
    const y = b[r]!;
    if (Number.isFinite(x) && Number.isFinite(y)) diffs.push(x - y);
  }
  return spread(diffs);
}

/**
 * The order of the variants in round r: rotated by r, so that no variant always runs
 * first (after a pause) or right after the heaviest one.
 */
export function roundOrder<T>(variants: readonly T[], round: number): T[] {
  const n = variants.length;
  if (n === 0) return [];
  const k = ((round % n) + n) % n;
  return [...variants.slice(k), ...variants.slice(0, k)];
}
