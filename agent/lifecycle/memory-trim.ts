// Gives the native memory the agent freed back to the system. glibc's free() only returns the
// top of the main heap; the free pages between live allocations stay in the process (its RSS)
// until malloc_trim. Bursts leave many such pages: a node's pods getting their certificates
// at once (RSA keys, CSRs, X.509 parsing, TLS contexts), a large snapshot decoded, thousands
// of connections closing. Measured in the lab: an agent that had just enrolled 100 pods held
// 4.5 MB of free malloc memory in its RSS (87.9 MB); malloc_trim(0) gave it back (83.5 MB).
// Envoy asks tcmalloc for the same (its shrink_heap overload action). Where the agent runs on
// jemalloc (the DaemonSet preloads it), the trim is jemalloc's purge of its unused dirty pages
// (datapath/socket-calls.ts), which an idle jemalloc would otherwise keep.
//
// When: once things are quiet after a burst (`poke()`, then `quietMs` with no other poke),
// and every `intervalMs` regardless, for what no poke announced (connections). A trim walks
// the free lists on the event loop (10 ms for 80 MB of fragmented heap here), so never per
// request; a trim that took longer than `slowMs` (a large, busy heap) doubles the wait before
// the next periodic one, up to 10 minutes, so that a proxy under load does not stall every
// minute; a quick one brings the interval back.
import { systemClock, type Clock, type ClockTimer } from '../../common/clock.js';
import { logger } from '../../common/log.js';

const log = logger('agent/memory-trim');

export interface MemoryTrimOptions {
  /** releases free memory; true when some was (datapath/socket-calls.ts mallocTrim) */
  trim: () => boolean;
  /** after the last poke (default 2 s) */
  quietMs?: number;
  /** between trims when nothing pokes (default 60 s; 0: never) */
  intervalMs?: number;
  /** a trim slower than this backs the periodic trims off (default 10 ms) */
  slowMs?: number;
  clock?: Clock;
  /** milliseconds, for a trim's duration (default performance.now) */
  now?: () => number;
}

/** the longest wait between periodic trims after slow ones */
const MAX_INTERVAL_MS = 600_000;

export class MemoryTrimmer {
  private readonly clock: Clock;
  private readonly now: () => number;
  private quiet: ClockTimer | undefined;
  private periodic: ClockTimer | undefined;
  /** the wait before the next periodic trim: intervalMs, longer after slow trims */
  private every: number;
  private closed = false;
  /** trims done, and how many released something */
  readonly counts = { trims: 0, released: 0 };

  constructor(private readonly opts: MemoryTrimOptions) {
    this.clock = opts.clock ?? systemClock;
    this.now = opts.now ?? (() => performance.now());
    this.every = opts.intervalMs ?? 60_000;
    this.schedulePeriodic();
  }

  /** the wait before the next periodic trim now */
  get intervalMs(): number {
    return this.every;
  }

  /** Something allocated a lot and let it go: trim once `quietMs` passed without another poke. */
  poke(): void {
    if (this.closed) return;
    this.quiet?.cancel();
    this.quiet = this.clock.setTimeout(() => {
      this.quiet = undefined;
      this.trimNow();
    }, this.opts.quietMs ?? 2_000);
  }

  close(): void {
    this.closed = true;
    this.quiet?.cancel();
    this.quiet = undefined;
    this.periodic?.cancel();
    this.periodic = undefined;
  }

  private schedulePeriodic(): void {
    if (this.closed || this.every <= 0) return;
    this.periodic = this.clock.setTimeout(() => {
      this.periodic = undefined;
      this.trimNow();
      this.schedulePeriodic();
    }, this.every);
  }

  private trimNow(): void {
    if (this.closed) return;
    const t0 = this.now();
    let released = false;
    try {
      released = this.opts.trim();
    } catch (err) {
      log.warn({ err }, 'memory trim failed; no more trims: freed native memory stays in the process');
      this.close(); // once, not a warning a minute
      return;
    }
    const ms = this.now() - t0;
    this.counts.trims++;
    if (released) this.counts.released++;
    const base = this.opts.intervalMs ?? 60_000;
    const slow = this.opts.slowMs ?? 10;
    if (base > 0 && ms > slow) {
      this.every = Math.min(this.every * 2, Math.max(base, MAX_INTERVAL_MS));
      log.info({ ms: Math.round(ms), nextPeriodicMs: this.every }, 'memory trim was slow; periodic trims back off');
    } else if (ms < slow / 2) {
      this.every = base;
    }
    log.debug({ released, ms: Math.round(ms * 10) / 10 }, 'freed native memory returned to the system');
  }
}
