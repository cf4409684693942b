// Per-workload fairness: the node proxy is shared by every pod of the node, so one noisy
// source workload must not take a destination's whole pending-request or connection budget
// from the others (a sidecar per pod gets this for free; a shared proxy must do it).
//
// Pending requests: one FIFO per source workload, served round-robin across sources, so a
// backlog from one source does not delay the others' requests. When the queue is full, a
// request from a source holding fewer pending slots than the heaviest source takes the slot
// of that source's newest request (which overflows with 503 UO, as it would have had it come
// later); otherwise the new request overflows. With one source, it gets the whole budget.
//
// Connections without a queue (L4, maxConnections): a source may hold at most three quarters
// of the limit (when the limit is 4 or more), so a quarter always stays for the others.

export interface Admission<T> {
  admitted: boolean;
  /** a request of the heaviest source that gave its slot up (answer it 503 UO) */
  evicted: T | undefined;
}

export class FairQueue<T> {
  /** per source FIFO; Map order is the round-robin order (a served source moves to the back) */
  private readonly queues = new Map<string, T[]>();
  private count = 0;

  constructor(public limit: number) {}

  get size(): number {
    return this.count;
  }

  pendingOf(source: string): number {
    return this.queues.get(source)?.length ?? 0;
  }

  push(source: string, item: T): Admission<T> {
    let evicted: T | undefined;
    if (this.count >= this.limit) {
      const heavy = this.heaviest();
      if (!heavy || heavy[0] === source || this.pendingOf(source) + 1 >= heavy[1].length) return { admitted: false, evicted: undefined };
      evicted = heavy[1].pop();
      this.count--;
      if (heavy[1].length === 0) this.queues.delete(heavy[0]);
    }
    let q = this.queues.get(source);
    if (!q) {
      q = [];
      this.queues.set(source, q);
    }
    q.push(item);
    this.count++;
    return { admitted: true, evicted };
  }

  /** Next request, round-robin across sources. */
  shift(): T | undefined {
    for (const [source, q] of this.queues) {
      const item = q.shift();
      this.queues.delete(source);
      if (item === undefined) continue;
      this.count--;
      if (q.length > 0) this.queues.set(source, q); // to the back of the rotation
      return item;
    }
    return undefined;
  }

  /** Takes a request out (its client went away). */
  remove(source: string, item: T): boolean {
    const q = this.queues.get(source);
    if (!q) return false;
    const i = q.indexOf(item);
    if (i < 0) return false;
    q.splice(i, 1);
    this.count--;
    if (q.length === 0) this.queues.delete(source);
    return true;
  }

  /** Empties the queue, handing every request to `fn`. */
  drain(fn: (item: T) => void): void {
    const all = [...this.queues.values()].flat();
    this.queues.clear();
    this.count = 0;
    for (const item of all) fn(item);
  }

  private heaviest(): [string, T[]] | undefined {
    let best: [string, T[]] | undefined;
    for (const e of this.queues) if (!best || e[1].length > best[1].length) best = e;
    return best;
  }
}

/** The most connections one source may hold when `limit` is the destination's maximum. */
export function perSourceConnectionCap(limit: number): number {
  return limit >= 4 ? limit - Math.floor(limit / 4) : limit;
}

/** Counts what each source holds of a shared limit (L4 connections). */
export class SourceCounter {
  private readonly held = new Map<string, number>();
  private total = 0;

  get size(): number {
    return this.total;
  }

  /** Takes one slot for `source` if the limit and the per-source cap allow it. */
  tryAcquire(source: string, limit: number): boolean {
    if (this.total >= limit) return false;
    const h = this.held.get(source) ?? 0;
    if (h >= perSourceConnectionCap(limit)) return false;
    this.held.set(source, h + 1);
    this.total++;
    return true;
  }

  release(source: string): void {
    const h = this.held.get(source);
    if (!h) return;
    if (h === 1) this.held.delete(source);
    else this.held.set(source, h - 1);
    this.total--;
  }
}
