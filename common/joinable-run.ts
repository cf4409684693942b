// A run that waits its turn in a serial queue and is joined by the calls made before it
// starts: they share it, and it runs with the newest input. A burst of requests (snapshots,
// CNI ADDs asking for a reconcile) then queues one run, not one each, while every caller
// still gets a run that began after its call. The queue is the caller's: `enqueue` puts
// `start` behind whatever runs now and returns the promise of that turn.
export class JoinableRun<T> {
  private queued: { input: T; run: Promise<void> } | undefined;

  constructor(
    private readonly enqueue: (start: () => Promise<void>) => Promise<void>,
    private readonly run: (input: T) => Promise<void>,
  ) {}

  /** Resolves once a run that started after this call (with this input or a newer one) is done. */
  request(input: T): Promise<void> {
    if (this.queued) {
      this.queued.input = input;
      return this.queued.run;
    }
    const q = { input, run: Promise.resolve() };
    q.run = this.enqueue(() => {
      if (this.queued === q) this.queued = undefined; // started: a later call queues anew
      return this.run(q.input);
    });
    this.queued = q;
    return q.run;
  }
}
