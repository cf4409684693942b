// Time, injectable: certificate lifetimes, renewals and root-rotation overlaps are hours
// long, so the code that schedules them takes a Clock and tests drive a fake one instead
// of waiting. The system clock's timers are unref()'ed: a pending renewal never keeps a
// process alive.

export interface ClockTimer {
  cancel(): void;
}

export interface Clock {
  /** milliseconds since the epoch */
  now(): number;
  /** runs `fn` once after `ms` (negative: as soon as possible); never keeps the process alive */
  setTimeout(fn: () => void, ms: number): ClockTimer;
}

// setTimeout takes at most a signed 32-bit delay; longer ones are re-armed in steps
const MAX_DELAY = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
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
};
