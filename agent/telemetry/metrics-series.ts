// Counters and histograms for the per-request path. prom-client's `labels(...)` children
// validate and hash their ~25 labels on every increment; here the caller keeps a series (one
// label set) and an increment is a few additions. The metrics register with the same
// prom-client Registry (it asks each metric for get()) and expose the same text format.
import type { Registry } from 'prom-client';

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: MetricValue[];
}

export class CounterSeries {
  value = 0;
  constructor(readonly labels: Record<string, string>) {}
  inc(by = 1): void {
    this.value += by;
  }
}

export class HistogramSeries {
  /** per bucket (non-cumulative), the last one is +Inf */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Record<string, string>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

interface Options {
  name: string;
  help: string;
  labelNames: readonly string[];
  registers: Registry[];
}

export class SeriesCounter {
  /** bumped when series are dropped: holders of series (LabelSet) look them up again */
  generation = 0;
  readonly name: string;
  readonly help: string;
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, CounterSeries>();

  constructor(private readonly opts: Options) {
    this.name = opts.name;
    this.help = opts.help;
    for (const r of opts.registers) r.registerMetric(this as never);
  }

  /** The series of one label set (created once; keep it). */
  labels(labels: Record<string, string>): CounterSeries {
    const key = seriesKey(this.opts.labelNames, labels);
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = new CounterSeries(labels)));
    return s;
  }

  /** prom-client's signature, for callers off the hot path */
  inc(labels: Record<string, string>, by = 1): void {
    this.labels(labels).inc(by);
  }

  get(): MetricSnapshot {
    return { name: this.name, help: this.help, type: 'counter', aggregator: 'sum', values: [...this.series.values()].map((s) => ({ labels: s.labels, value: s.value })) };
  }

  reset(): void {
    for (const s of this.series.values()) s.value = 0;
  }

  /** Drops the series `keep` refuses (their workloads left); returns how many. */
  retain(keep: (labels: Record<string, string>) => boolean): number {
    let n = 0;
    for (const [k, s] of this.series) if (!keep(s.labels)) (this.series.delete(k), n++);
    if (n > 0) this.generation++;
    return n;
  }

  get size(): number {
    return this.series.size;
  }
}

export class SeriesHistogram {
  generation = 0;
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, HistogramSeries>();

  constructor(private readonly opts: Options & { buckets: readonly number[] }) {
    this.name = opts.name;
    this.help = opts.help;
    for (const r of opts.registers) r.registerMetric(this as never);
  }

  labels(labels: Record<string, string>): HistogramSeries {
    const key = seriesKey(this.opts.labelNames, labels);
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = new HistogramSeries(labels, this.opts.buckets)));
    return s;
  }

  /** prom-client's signature, for callers off the hot path */
  observe(labels: Record<string, string>, v: number): void {
    this.labels(labels).observe(v);
  }

  get(): MetricSnapshot {
    const values: MetricValue[] = [];
    const bounds = this.opts.buckets;
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i <= bounds.length; i++) {
        cumulative += s.counts[i]!;
        values.push({ labels: { ...s.labels, le: i < bounds.length ? bounds[i]! : '+Inf' }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values };
  }

  retain(keep: (labels: Record<string, string>) => boolean): number {
    let n = 0;
    for (const [k, s] of this.series) if (!keep(s.labels)) (this.series.delete(k), n++);
    if (n > 0) this.generation++;
    return n;
  }

  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

function seriesKey(names: readonly string[], labels: Record<string, string>): string {
  let k = '';
  for (const n of names) k += `${labels[n] ?? ''}\u0000`;
  return k;
}
