// A fixed number of slots and a queue of waiters, in arrival order: at most `size` holders at
// once. A holder that gives its slot back hands it straight to the longest waiter, so a
// newcomer never overtakes the queue.

export class Slots {
  private held = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!(size >= 1)) throw new RangeError(`slots: size must be at least 1, not ${size}`);
  }

  /** Slots held now. */
  get inUse(): number {
    return this.held;
  }

  /** Callers waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Resolves once the caller holds a slot: at once when one is free, else in arrival order. */
  async take(): Promise<void> {
    if (this.held < this.size) {
      this.held++;
      return;
    }
    await new Promise<void>((go) => this.waiting.push(go));
  }

  /** Gives a held slot back: to the longest waiter if there is one. */
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else if (this.held > 0) this.held--;
  }

  /**
   * Lets every waiter go without a slot: their owner is closing, and each must check that
   * before doing anything. The slots' count no longer matters after it.
   */
  releaseWaiters(): void {
    for (const go of this.waiting.splice(0)) go();
  }
}
