// A Clock tests drive by hand: advance(ms) moves time and fires the timers that fall due, in
// time order. Certificates, renewals and rotation overlaps are hours long; tests advance
// instead of waiting. Its monotonic reading moves with its wall time (from 0 at the start).
import type { Clock, ClockTimer } from '../../common/clock.js';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private t: number;
  private readonly start: number;
  private seq = 0;
  private pending: Pending[] = [];

  /** starts at `start` (default: now, whole seconds, as X.509 times are) */
  constructor(start = Math.floor(Date.now() / 1000) * 1000) {
    this.t = start;
    this.start = start;
  }

  now(): number {
    return this.t;
  }

  monotonic(): number {
    return this.t - this.start;
  }

  setTimeout(fn: () => void, ms: number): ClockTimer {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.pending.push(p);
    return { cancel: () => (this.pending = this.pending.filter((x) => x !== p)) };
  }

  setInterval(fn: () => void, ms: number): ClockTimer {
    let current: ClockTimer;
    const arm = () => {
      current = this.setTimeout(() => {
        arm();
        fn();
      }, Math.max(1, ms));
    };
    arm();
    return { cancel: () => current.cancel() };
  }

  /** when the next timer is due (undefined: none) */
  nextDue(): number | undefined {
    return this.pending.reduce<number | undefined>((m, p) => (m === undefined || p.at < m ? p.at : m), undefined);
  }

  timers(): number {
    return this.pending.length;
  }

  /** moves time forward by `ms`, firing every timer due on the way (at its own time) */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.pending.filter((p) => p.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.pending = this.pending.filter((p) => p !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }

  /** moves time to `at` (ms since the epoch) */
  advanceTo(at: number): void {
    this.advance(Math.max(0, at - this.t));
  }
}
