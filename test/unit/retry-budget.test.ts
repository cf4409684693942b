// Retry budgets (agent/retry-budget.ts, Linkerd's model as tower implements it) and the retry
// policy (agent/retry.ts): retries stay within percent × requests + the per-second floor over
// the window; old deposits expire; retryOn tokens mean what Envoy says; back-off is full
// jitter under an exponential ceiling.
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { RETRY_BUDGET_DEFAULT, RetryBudget } from '../../agent/cluster/retry-budget.js';
import { backoffMs, compileRetry, NO_RETRY, retriableFailure, retriableResponse, retriesOnGrpc, type TryFailure } from '../../agent/l7/retry.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { holds } from '../helpers/property-holds.js';

/** A budget on a fake clock that starts at 0. */
function budget(config: ConstructorParameters<typeof RetryBudget>[0]): { b: RetryBudget; clock: FakeClock } {
  const clock = new FakeClock(0);
  return { b: new RetryBudget(config, () => clock.now()), clock };
}

/** Takes every retry the budget allows now; resolves how many. */
function drain(b: RetryBudget): number {
  let n = 0;
  while (b.withdraw()) n++;
  return n;
}

test('with no requests, only the floor is available: minRetriesPerSecond × ttl', (t) => {
  const { b } = budget({ percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000, minRetryConcurrency: 0 });
  t.is(drain(b), 100);
});

test('retries never exceed percent × requests + floor within a window, and reach it when every request wants one', (t) => {
  holds(
    t,
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 0, max: 20 }),
      fc.integer({ min: 0, max: 3000 }),
      (percent, floorPerSecond, requests) => {
        const ttlMs = 10_000;
        const { b, clock } = budget({ percent, minRetriesPerSecond: floorPerSecond, ttlMs, minRetryConcurrency: 0 });
        let retries = 0;
        // every request fails and asks for a retry, all within one second (a fake clock: the
        // loop's own duration does not matter)
        for (let i = 0; i < requests; i++) {
          clock.advanceTo((i / Math.max(1, requests)) * 1000);
          b.deposit();
          if (b.withdraw()) retries++;
        }
        const cap = (percent / 100) * requests + floorPerSecond * (ttlMs / 1000);
        assert.ok(retries <= cap + 1, `${retries} retries > cap ${cap}`);
        // each request asks for one retry, so the budget can be used up to the request count
        const reachable = Math.min(requests, Math.floor(cap) - Math.ceil(100 / percent));
        assert.ok(retries >= reachable, `${retries} retries, cap ${cap}: the budget was not used`);
      },
    ),
    { numRuns: 80 },
  );
});

test('deposits expire after the window: a burst of traffic long ago buys no retries now', (t) => {
  const { b, clock } = budget({ percent: 20, minRetriesPerSecond: 0, ttlMs: 1000, minRetryConcurrency: 0 });
  for (let i = 0; i < 100; i++) b.deposit();
  clock.advanceTo(500);
  t.true(b.withdraw(), 'within the window');
  clock.advanceTo(5000);
  t.false(b.withdraw(), 'the window has passed');
});

test('deposits count for one ttl and not after it, however many windows pass before the budget is next read', (t) => {
  // ttl 1 s in 10 slots of 100 ms; 100 requests at 0 buy 20 retries; no floor
  for (const readAt of [0, 99, 100, 450, 999, 1000, 1001, 1050, 1099, 1100, 1500, 2000, 5000, 60_000]) {
    const { b, clock } = budget({ percent: 20, minRetriesPerSecond: 0, ttlMs: 1000, minRetryConcurrency: 0 });
    for (let i = 0; i < 100; i++) b.deposit();
    clock.advanceTo(readAt);
    t.is(b.available(), readAt <= 1000 ? 20 : 0, `first read ${readAt} ms after the requests`);
  }
});

test('property: any timeline of requests, retries and reads gives what a reference budget (a list of closed windows) gives', (t) => {
  const step = fc.record({
    dt: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 25_000 })),
    op: fc.constantFrom('deposit' as const, 'deposit' as const, 'withdraw' as const, 'available' as const),
  });
  holds(
    t,
    fc.property(
      fc.constantFrom(0, 1, 5, 20, 25, 50, 100, 200, 500),
      fc.integer({ min: 0, max: 5 }),
      fc.constantFrom(0, 500, 1000, 2500, 10_000, 60_000, 120_000),
      fc.array(step, { maxLength: 200 }),
      (percent, minRetriesPerSecond, ttlMs, steps) => {
        const config = { percent, minRetriesPerSecond, ttlMs, minRetryConcurrency: 0 };
        const { b, clock } = budget(config);
        const ref = new ReferenceBudget(config, 0);
        steps.forEach(({ dt, op }, i) => {
          clock.advance(dt);
          const now = clock.now();
          const got = op === 'deposit' ? (b.deposit(), undefined) : op === 'withdraw' ? b.withdraw() : b.available();
          const want = ref[op](now);
          assert.equal(got, want, `step ${i} (${op} at ${now} ms)`);
        });
      },
    ),
    { numRuns: 300 },
  );
});

/**
 * tower's TpsBudget written another way: the budget counts the open window and the last ten
 * closed ones (a list, not a ring); a window closes when a read finds it a window old, and
 * every further whole window that passed adds an empty one. Amounts keep tower's ratio but
 * are whole numbers, so that sums never round: a request deposits `percent` and a retry
 * costs 100 (above 100%: 100 and 10,000 / percent); the floor is minRetriesPerSecond × ttl
 * seconds retries.
 */
class ReferenceBudget {
  private readonly closed: number[] = [];
  private open = 0;
  private openedAt: number;
  private readonly window: number;
  private readonly depositAmount: number;
  private readonly withdrawAmount: number;
  private readonly reserve: number;

  constructor(c: { percent: number; minRetriesPerSecond: number; ttlMs: number }, now: number) {
    const ttl = Math.min(60_000, Math.max(1000, c.ttlMs || 10_000));
    this.window = ttl / 10;
    // tower's 1 : 1/ratio (1000 : 1000/ratio above 100%), scaled
    [this.depositAmount, this.withdrawAmount] = c.percent === 0 ? [0, 1] : c.percent <= 100 ? [c.percent, 100] : [100, (100 * 100) / c.percent];
    this.reserve = c.minRetriesPerSecond * (ttl / 1000) * this.withdrawAmount;
    this.openedAt = now;
  }

  private roll(now: number): void {
    const elapsed = now - this.openedAt;
    if (elapsed < this.window) return;
    this.closed.push(this.open);
    for (let k = Math.ceil(elapsed / this.window) - 1; k > 0 && this.closed.length < 1000; k--) this.closed.push(0);
    this.closed.splice(0, Math.max(0, this.closed.length - 10));
    this.open = 0;
    this.openedAt = now;
  }

  private balance(): number {
    return this.reserve + this.open + this.closed.reduce((a, x) => a + x, 0);
  }

  deposit(now: number): undefined {
    this.roll(now);
    this.open += this.depositAmount;
    return undefined;
  }

  withdraw(now: number): boolean {
    this.roll(now);
    if (this.balance() < this.withdrawAmount) return false;
    this.open -= this.withdrawAmount;
    return true;
  }

  available(now: number): number {
    this.roll(now);
    return Math.floor(this.balance() / this.withdrawAmount);
  }
}

test('withdrawals expire too: after the window the floor is whole again', (t) => {
  const { b, clock } = budget({ percent: 20, minRetriesPerSecond: 2, ttlMs: 2000, minRetryConcurrency: 0 });
  t.is(drain(b), 4);
  clock.advanceTo(1500);
  t.false(b.withdraw(), 'within the window the spent floor stays spent');
  clock.advanceTo(5000);
  t.is(drain(b), 4);
});

test("retryOn: 5xx, gateway-error, retriable-4xx, status codes and gRPC codes as Envoy reads them", (t) => {
  const r5 = compileRetry({ attempts: 3, perTryTimeoutMs: 0, retryOn: ['5xx'], retriableStatusCodes: [], backoffBaseMs: 25, backoffMaxMs: 250 });
  t.true(retriableResponse(r5, 500, -1));
  t.true(retriableResponse(r5, 503, -1));
  t.false(retriableResponse(r5, 404, -1));
  for (const f of ['connect-failure', 'reset', 'refused-stream', 'per-try-timeout'] as const) t.true(retriableFailure(r5, f), f);
  const gw = compileRetry({ attempts: 1, perTryTimeoutMs: 0, retryOn: ['gateway-error'], retriableStatusCodes: [], backoffBaseMs: 25, backoffMaxMs: 250 });
  t.true(retriableResponse(gw, 502, -1));
  t.false(retriableResponse(gw, 500, -1));
  const cf = compileRetry({ attempts: 1, perTryTimeoutMs: 0, retryOn: ['connect-failure', '409', 'unavailable'], retriableStatusCodes: [], backoffBaseMs: 25, backoffMaxMs: 250 });
  t.true(retriableFailure(cf, 'connect-failure'));
  t.false(retriableFailure(cf, 'reset'));
  t.false(retriableFailure(cf, 'per-try-timeout'), 'a per-try timeout retries only under 5xx, gateway-error or reset');
  t.true(retriableResponse(cf, 409, -1), 'a bare integer is a retriable status code');
  t.true(retriableResponse(cf, 200, 14), 'grpc-status UNAVAILABLE');
  t.false(retriableResponse(cf, 200, 13), 'grpc-status INTERNAL is not listed');
  const none = compileRetry({ attempts: 0, perTryTimeoutMs: 0, retryOn: ['5xx'], retriableStatusCodes: [], backoffBaseMs: 25, backoffMaxMs: 250 });
  t.is(none.attempts, 0, 'attempts 0 disables retries');
});

test('back-off: uniform in [0, min(base × 2^(n−1), max))', (t) => {
  const r = compileRetry({ attempts: 5, perTryTimeoutMs: 0, retryOn: ['5xx'], retriableStatusCodes: [], backoffBaseMs: 25, backoffMaxMs: 250 });
  holds(
    t,
    fc.property(fc.integer({ min: 1, max: 10 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (n, u) => {
      const ceiling = Math.min(25 * 2 ** (n - 1), 250);
      const w = backoffMs(r, n, () => u);
      assert.ok(w >= 0 && w < ceiling, `retry ${n}: ${w} ms, ceiling ${ceiling}`);
    }),
  );
});

// --- retryOn as Envoy documents it, against every token set ------------------------------------

const RETRY_ON = ['5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'retriable-4xx', 'refused-stream'] as const;
const GRPC_ON = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 } as const;
const FAILURES: TryFailure[] = ['connect-failure', 'reset-before-request', 'reset', 'refused-stream', 'per-try-timeout'];

/**
 * Envoy's x-envoy-retry-on, token by token: 5xx "any 5xx response code, or if the upstream
 * server does not respond at all (disconnect/reset/read timeout). (Includes connect-failure
 * and refused-stream)"; gateway-error 502, 503, 504, and like 5xx for failures; reset "does
 * not respond at all"; reset-before-request, connect-failure, refused-stream only that;
 * retriable-4xx 409; a per-try timeout counts as a reset.
 */
function envoyRetries(tokens: ReadonlySet<string>, codes: ReadonlySet<number>, outcome: { status: number; grpc: number } | TryFailure): boolean {
  const has = (x: string) => tokens.has(x);
  if (typeof outcome === 'string') {
    const any5xx = has('5xx') || has('gateway-error') || has('reset');
    if (outcome === 'connect-failure') return any5xx || has('connect-failure') || has('reset-before-request');
    if (outcome === 'reset-before-request') return any5xx || has('reset-before-request');
    if (outcome === 'refused-stream') return any5xx || has('refused-stream');
    return any5xx;
  }
  const { status, grpc } = outcome;
  return (
    Object.entries(GRPC_ON).some(([name, code]) => has(name) && grpc === code) ||
    (has('5xx') && status >= 500 && status <= 599) ||
    (has('gateway-error') && [502, 503, 504].includes(status)) ||
    (has('retriable-4xx') && status === 409) ||
    codes.has(status)
  );
}

test('property: every retryOn token set retries exactly the responses and failures Envoy documents', (t) => {
  const tokenArb = fc.constantFrom<string>(...RETRY_ON, ...Object.keys(GRPC_ON), '418', '503');
  const outcomeArb = fc.oneof(
    fc.record({
      status: fc.constantFrom(200, 404, 409, 418, 499, 500, 502, 503, 504, 599, 600),
      grpc: fc.constantFrom(-1, 0, 1, 4, 8, 13, 14, 2, 31, 33, 45),
    }),
    fc.constantFrom(...FAILURES),
  );
  holds(
    t,
    fc.property(fc.uniqueArray(tokenArb, { maxLength: 5 }), fc.uniqueArray(fc.constantFrom(418, 500, 503), { maxLength: 2 }), outcomeArb, (tokens, listed, outcome) => {
      const r = compileRetry({ attempts: 2, perTryTimeoutMs: 0, retryOn: tokens, retriableStatusCodes: listed, backoffBaseMs: 25, backoffMaxMs: 250 });
      const codes = new Set([...listed, ...tokens.filter((x) => /^\d+$/.test(x)).map(Number)]);
      const want = envoyRetries(new Set(tokens), codes, outcome);
      const got = typeof outcome === 'string' ? retriableFailure(r, outcome) : retriableResponse(r, outcome.status, outcome.grpc);
      assert.equal(got, want, `retryOn ${JSON.stringify(tokens)}, codes ${JSON.stringify(listed)}: ${JSON.stringify(outcome)}`);
      assert.equal(retriesOnGrpc(r), tokens.some((x) => x in GRPC_ON), 'looks at grpc-status');
    }),
    { numRuns: 2000 },
  );
});

test('compiling a retry policy: no policy or no attempts is no retry; tokens are trimmed; only three-digit integers are status codes', (t) => {
  t.is(compileRetry(undefined), NO_RETRY);
  const none = compileRetry({ attempts: 0, perTryTimeoutMs: 100, retryOn: ['5xx'], retriableStatusCodes: [503], backoffBaseMs: 25, backoffMaxMs: 250 });
  t.is(none, NO_RETRY, 'attempts 0');
  t.false(retriableResponse(none, 503, -1));
  const r = compileRetry({ attempts: 2, perTryTimeoutMs: 150, retryOn: [' gateway-error ', 'x409', '4090', '40', ' 418'], retriableStatusCodes: [], backoffBaseMs: 25, backoffMaxMs: 250 });
  t.true(retriableResponse(r, 502, -1), 'a token with spaces around it');
  t.true(retriableResponse(r, 418, -1), 'a bare integer with spaces around it');
  for (const status of [409, 4090, 40]) t.false(retriableResponse(r, status, -1), `${status}`);
  t.is(r.perTryTimeoutMs, 150);
  t.is(r.attempts, 2);
  const unset = compileRetry({ attempts: 1, retryOn: ['5xx'], backoffBaseMs: 0, backoffMaxMs: 0 } as unknown as Parameters<typeof compileRetry>[0]);
  t.is(unset.perTryTimeoutMs, 0, 'no per-try timeout unless set');
  t.true(retriableResponse(unset, 500, -1));
});

test("back-off: Envoy's defaults when unset (base 25 ms, max 10 × base); the ceiling doubles per retry up to the max", (t) => {
  const policy = (backoffBaseMs: number, backoffMaxMs: number) =>
    compileRetry({ attempts: 5, perTryTimeoutMs: 0, retryOn: ['5xx'], retriableStatusCodes: [], backoffBaseMs, backoffMaxMs });
  // a draw of (almost) 1 shows the ceiling
  const ceilings = (r: ReturnType<typeof compileRetry>) => [1, 2, 3, 4, 5, 6].map((n) => Math.round(backoffMs(r, n, () => 0.999999)));
  t.deepEqual(ceilings(policy(0, 0)), [25, 50, 100, 200, 250, 250]);
  t.deepEqual(ceilings(policy(10, 0)), [10, 20, 40, 80, 100, 100]);
  t.deepEqual(ceilings(policy(0, 60)), [25, 50, 60, 60, 60, 60]);
  t.deepEqual(ceilings(policy(100, 150)), [100, 150, 150, 150, 150, 150]);
  t.is(backoffMs(policy(100, 150), 3, () => 0), 0, 'full jitter: down to 0');
});

test("the default budget is Linkerd's: 20% of requests plus 10 retries a second over 10 s", (t) => {
  t.deepEqual(RETRY_BUDGET_DEFAULT, { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000, minRetryConcurrency: 0 });
  const b = new RetryBudget();
  for (let i = 0; i < 50; i++) b.deposit();
  t.is(b.available(), 100 + 10);
});

test('a window closes when exactly one window has passed since the last one closed', (t) => {
  // ttl 1 s: windows of 100 ms. Deposits at 0, read at 1,000 ms: still counted, and their
  // window is the oldest of the ten; the read at 1,100 ms closes the next window, which
  // takes the oldest one's place
  const { b, clock } = budget({ percent: 20, minRetriesPerSecond: 0, ttlMs: 1000, minRetryConcurrency: 0 });
  for (let i = 0; i < 100; i++) b.deposit();
  clock.advanceTo(1000);
  t.is(b.available(), 20);
  clock.advanceTo(1099);
  t.is(b.available(), 20);
  clock.advanceTo(1100);
  t.is(b.available(), 0);
});
