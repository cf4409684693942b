// Time, injectable, for the whole project. Two readings of one clock, because two kinds of
// code need different things from it:
// - wall time (`now`): certificate lifetimes, renewals and root-rotation overlaps are dates
//   on the calendar, hours long; the CA and the identity manager schedule by it;
// - monotonic time (`monotonic`): latencies, outlier ejection periods and retry-budget
//   windows are durations that must never jump when the system clock is set; the proxy's
//   clusters measure by it.
// Tests drive a fake one (test/helpers/fake-clock.ts) instead of waiting. The system
// clock's timers are unref()'ed: a pending renewal or sweep never keeps a process alive.

export interface ClockTimer {
  cancel(): void;
}

export interface Clock {
  /** wall time: milliseconds since the epoch */
  now(): number;
  /** monotonic milliseconds from an arbitrary origin */
  monotonic(): number;
  /** runs `fn` once after `ms` (negative: as soon as possible); never keeps the process alive */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  /** runs `fn` every `ms`; never keeps the process alive */
  setInterval(fn: () => void, ms: number): ClockTimer;
}

// setTimeout takes at most a signed 32-bit delay; longer ones are re-armed in steps
const MAX_DELAY = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout(fn, ms) {
    const due = Date.now() + Math.max(0, ms);
    let t: NodeJS.Timeout;
    const arm = () => {
      const left = due - Date.now();
      t = setTimeout(left > MAX_DELAY ? arm : fn, Math.min(Math.max(0, left), MAX_DELAY));
      t.unref();
    };
    arm();
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};
