// Gives the native memory the agent freed back to the system. glibc's free() only returns the
// top of the main heap; the free pages between live allocations stay in the process (its RSS)
// until malloc_trim. Bursts leave many such pages: a node's pods getting their certificates
// at once (RSA keys, CSRs, X.509 parsing, TLS contexts), a large snapshot decoded, thousands
// of connections closing. Measured in the lab: an agent that had just enrolled 100 pods held
// 4.5 MB of free malloc memory in its RSS (87.9 MB); malloc_trim(0) gave it back (83.5 MB).
// Envoy asks tcmalloc for the same (its shrink_heap overload action).
//
// When: once things are quiet after a burst (`poke()`, then `quietMs` with no other poke),
// and every `intervalMs` regardless, for what no poke announced (connections). A trim walks
// the free lists on the event loop (10 ms for 80 MB of fragmented heap here), so never per request.
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
  clock?: Clock;
}

export class MemoryTrimmer {
  private readonly clock: Clock;
  private quiet: ClockTimer | undefined;
  private readonly interval: ClockTimer | undefined;
  private closed = false;
  /** trims done, and how many released something (for tests and /debug) */
  readonly counts = { trims: 0, released: 0 };

  constructor(private readonly opts: MemoryTrimOptions) {
    this.clock = opts.clock ?? systemClock;
    const every = opts.intervalMs ?? 60_000;
    this.interval = every > 0 ? this.clock.setInterval(() => this.trimNow(), every) : undefined;
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
    this.interval?.cancel();
  }

  private trimNow(): void {
    if (this.closed) return;
    const t0 = performance.now();
    let released = false;
    try {
      released = this.opts.trim();
    } catch (err) {
      log.warn({ err }, 'malloc_trim failed; no more trims: freed native memory stays in the process');
      this.close(); // once, not a warning a minute
      return;
    }
    this.counts.trims++;
    if (released) this.counts.released++;
    log.debug({ released, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'freed native memory returned to the system');
  }
}
