// The open-loop schedule: request i is due at start + ⌊i · 10⁹ / rate⌋ ns, whatever happened
// to the requests before it. Latency is measured from that intended time, so a response that
// holds up the next requests is charged to them too (no coordinated omission, as wrk2 and
// HdrHistogram define it). Integer nanoseconds, so that "is request i due at t" has one
// answer on both sides of the arithmetic. Pure; test/unit/bench-schedule.test.ts checks it.

export class OpenLoopSchedule {
  /** requests in the whole schedule */
  readonly total: number;

  /**
   * @param rate requests per second (> 0)
   * @param durationS length of the schedule in seconds
   * @param startNs when request 0 is due (a monotonic clock in ns, e.g. process.hrtime)
   */
  constructor(
    readonly rate: number,
    readonly durationS: number,
    readonly startNs: number,
  ) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`rate must be a positive number of requests per second, got ${rate}`);
    if (!(durationS > 0)) throw new RangeError(`duration must be positive, got ${durationS} s`);
    this.total = Math.ceil(rate * durationS);
  }

  /** When request i is due (ns, on the clock of startNs). */
  intendedNs(i: number): number {
    return this.startNs + Math.floor((i * 1e9) / this.rate);
  }

  /**
   * How many requests are due at `nowNs` (those with intendedNs ≤ now), at most total:
   * ⌊i·10⁹/rate⌋ ≤ d  ⇔  i < (d + 1)·rate/10⁹, so the count is ⌈(d + 1)·rate/10⁹⌉.
   */
  dueAt(nowNs: number): number {
    const d = Math.floor(nowNs - this.startNs);
    if (d < 0) return 0;
    return Math.min(this.total, Math.ceil(((d + 1) * this.rate) / 1e9));
  }

  /** When the schedule's last request is due. */
  get endNs(): number {
    return this.intendedNs(this.total - 1);
  }

  /**
   * The first intended time after `nowNs` (for the ticker's sleep), or undefined when every
   * request is already due.
   */
  nextAfter(nowNs: number): number | undefined {
    const due = this.dueAt(nowNs);
    return due < this.total ? this.intendedNs(due) : undefined;
  }
}
