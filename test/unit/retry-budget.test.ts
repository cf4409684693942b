// Retry budgets (agent/retry-budget.ts, Linkerd's model as tower implements it) and the retry
// policy (agent/retry.ts): retries stay within percent × requests + the per-second floor over
// the window; old deposits expire; retryOn tokens mean what Envoy says; back-off is full
// jitter under an exponential ceiling.
import test from 'ava';
import fc from 'fast-check';
import { RetryBudget } from '../../agent/cluster/retry-budget.js';
import { backoffMs, compileRetry, retriableFailure, retriableResponse } from '../../agent/l7/retry.js';
import { FakeClock } from '../helpers/fake-clock.js';

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
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 0, max: 20 }),
      fc.integer({ min: 0, max: 3000 }),
      (percent, floorPerSecond, requests) => {
        const ttlMs = 10_000;
        const { b, clock } = budget({ percent, minRetriesPerSecond: floorPerSecond, ttlMs, minRetryConcurrency: 0 });
        let retries = 0;
        // every request fails and asks for a retry, all within one second
        for (let i = 0; i < requests; i++) {
          clock.advanceTo((i / Math.max(1, requests)) * 1000);
          b.deposit();
          if (b.withdraw()) retries++;
        }
        const cap = (percent / 100) * requests + floorPerSecond * (ttlMs / 1000);
        t.true(retries <= cap + 1, `${retries} retries > cap ${cap}`);
        // each request asks for one retry, so the budget can be used up to the request count
        const reachable = Math.min(requests, Math.floor(cap) - Math.ceil(100 / percent));
        t.true(retries >= reachable, `${retries} retries, cap ${cap}: the budget was not used`);
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
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (n, u) => {
      const ceiling = Math.min(25 * 2 ** (n - 1), 250);
      const w = backoffMs(r, n, () => u);
      t.true(w >= 0 && w < ceiling, `retry ${n}: ${w} ms, ceiling ${ceiling}`);
    }),
  );
});
