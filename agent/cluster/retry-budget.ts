// Retry budget, Linkerd's model (Finagle's RetryBudget as tower's TpsBudget implements it),
// on by default for every destination so that retries cannot amplify an outage. Linkerd:
// "retries are limited to a ratio of live requests plus a floor of retries per second, over a
// time window"; defaults 20% of requests plus 10 retries per second over 10 s.
//
// Mechanics (tower): every request deposits one token; a retry withdraws `1 / percent` tokens
// (5 at 20%); the balance is the sum of the last `ttl` worth of deposits and withdrawals
// (10 slots) plus a constant reserve of `minRetriesPerSecond × ttl seconds × withdraw`. So,
// over any window, retries ≤ percent × requests + minRetriesPerSecond × ttl.
import type { RetryBudget as RetryBudgetConfig } from '../../control/api/snapshot-routing.js';
import { systemClock } from '../../common/clock.js';

export const RETRY_BUDGET_DEFAULT: RetryBudgetConfig = { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000, minRetryConcurrency: 0 };

const SLOTS = 10;

export class RetryBudget {
  private readonly depositAmount: number;
  private readonly withdrawAmount: number;
  private readonly reserve: number;
  private readonly window: number;
  private readonly slots = new Float64Array(SLOTS);
  private index = 0;
  private slotStart: number;
  private writer = 0;

  /** `now` is a monotonic ms clock (injectable for tests) */
  constructor(
    readonly config: RetryBudgetConfig = RETRY_BUDGET_DEFAULT,
    private readonly now: () => number = systemClock.monotonic,
  ) {
    const ratio = Math.max(0, config.percent) / 100;
    // tower: "If there is no percent, then you gain nothing from deposits. Withdrawals can
    // only be made against the reserve, over time."; above 100%, scale by 1000
    if (ratio === 0) [this.depositAmount, this.withdrawAmount] = [0, 1];
    else if (ratio <= 1) [this.depositAmount, this.withdrawAmount] = [1, 1 / ratio];
    else [this.depositAmount, this.withdrawAmount] = [1000, 1000 / ratio];
    const ttlMs = Math.min(60_000, Math.max(1_000, config.ttlMs || 10_000));
    this.reserve = Math.max(0, config.minRetriesPerSecond) * (ttlMs / 1000) * this.withdrawAmount;
    this.window = ttlMs / SLOTS;
    this.slotStart = this.now();
  }

  /** A request (not a retry) was sent. */
  deposit(): void {
    this.expire();
    this.writer += this.depositAmount;
  }

  /** True when one retry may be made now; the retry is then charged. */
  withdraw(): boolean {
    this.expire();
    if (this.balance() >= this.withdrawAmount) {
      this.writer -= this.withdrawAmount;
      return true;
    }
    return false;
  }

  /** Retries that could be made now (for debugging views). */
  available(): number {
    this.expire();
    return Math.floor(this.balance() / this.withdrawAmount);
  }

  private balance(): number {
    let sum = this.writer + this.reserve;
    for (let i = 0; i < SLOTS; i++) sum += this.slots[i]!;
    return sum;
  }

  private expire(): void {
    const now = this.now();
    let elapsed = now - this.slotStart;
    if (elapsed < this.window) return;
    this.slots[this.index] = this.writer;
    this.writer = 0;
    let idx = (this.index + 1) % SLOTS;
    // every further whole window that passed empties one slot (at most all of them)
    for (let n = 0; elapsed > this.window && n < SLOTS; n++) {
      this.slots[idx] = 0;
      elapsed -= this.window;
      idx = (idx + 1) % SLOTS;
    }
    this.index = idx;
    this.slotStart = now;
  }
}
