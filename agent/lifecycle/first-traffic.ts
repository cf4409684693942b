// Between "the proxy accepts" and loading the rest of the agent (the control-plane client,
// the inbound programs, the CNI server: each blocks the event loop for tens of ms): the
// connections that queued in the kernel while the agent started are served first. They
// are accepted, read, routed and dialled over a few turns of the event loop; once it goes
// quiet they have been, and the agent moves on. Bounded: under steady load the loop may
// never go quiet, and the rest must come (a snapshot, new pods).
import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';

export interface QuietOptions {
  /** the longest the rest of the start is held back (default 250 ms) */
  capMs?: number;
  /** the window over which the loop's busy share is measured (default 10 ms) */
  windowMs?: number;
  /** quiet: busy less than this share of a window (default 0.5) */
  busy?: number;
}

/**
 * Resolves once the event loop was busy less than `busy` of a `windowMs` window (measured by
 * its utilisation, not by wall time, so a starved process on a loaded node is not mistaken
 * for a busy one), or after `capMs`. Says which.
 */
export async function untilEventLoopQuiet(opts: QuietOptions = {}): Promise<'quiet' | 'cap'> {
  const end = performance.now() + (opts.capMs ?? 250);
  let last = performance.eventLoopUtilization();
  while (performance.now() < end) {
    await delay(opts.windowMs ?? 10);
    const now = performance.eventLoopUtilization();
    if (performance.eventLoopUtilization(now, last).utilization < (opts.busy ?? 0.5)) return 'quiet';
    last = now;
  }
  return 'cap';
}
