// The outlier detector (agent/outlier-detection.ts) on a fake clock: Envoy's ejection state
// machine as Istio configures it.
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import type { OutlierDetection } from '../../control/api/snapshot-routing.js';
import { OutlierDetector, type OutlierEvent } from '../../agent/cluster/outlier-detection.js';
import { holds } from '../helpers/property-holds.js';

function config(over: Partial<OutlierDetection> = {}): OutlierDetection {
  return {
    enabled: true,
    consecutive5xxErrors: 3,
    consecutiveGatewayErrors: 0,
    consecutiveLocalOriginFailures: 5,
    splitExternalLocalOriginErrors: false,
    intervalMs: 1000,
    baseEjectionTimeMs: 10_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: 100,
    minHealthPercent: 0,
    ...over,
  };
}

function detector(over: Partial<OutlierDetection> = {}, hosts = ['a', 'b', 'c', 'd']) {
  const events: OutlierEvent[] = [];
  const d = new OutlierDetector(config(over), () => {}, (e) => events.push(e));
  d.setHosts(hosts);
  return { d, events };
}

/** Runs the interval sweep at every interval boundary up to `until`. */
function sweepUntil(d: OutlierDetector, from: number, until: number, interval = 1000): void {
  for (let t = Math.ceil(from / interval) * interval; t <= until; t += interval) d.sweep(t);
}

test('a host is ejected after N consecutive 5xx, not before; a success in between resets the count', (t) => {
  const { d } = detector();
  d.onResponse('a', 503, 0);
  d.onResponse('a', 500, 0);
  d.onResponse('a', 200, 0);
  d.onResponse('a', 502, 0);
  d.onResponse('a', 503, 0);
  t.false(d.isEjected('a'), 'the 200 reset the count');
  d.onResponse('a', 503, 0);
  t.true(d.isEjected('a'));
  t.false(d.isEjected('b'));
});

test('connect failures and timeouts count as 5xx unless local-origin errors are split', (t) => {
  const { d } = detector();
  d.onLocalFailure('a', 'connect-failure', 0);
  d.onLocalFailure('a', 'timeout', 0);
  d.onLocalFailure('a', 'reset', 0);
  t.true(d.isEjected('a'));
  const split = detector({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2 }).d;
  split.onLocalFailure('b', 'connect-failure', 0);
  split.onResponse('b', 503, 0);
  split.onResponse('b', 503, 0);
  t.false(split.isEjected('b'), 'two 503s are fewer than consecutive5xxErrors (3)');
  split.onLocalFailure('b', 'connect-failure', 0);
  t.true(split.isEjected('b'), 'two local-origin failures in a row');
});

test('split local-origin errors: a connection made or an answer between two local failures resets their count', (t) => {
  const { d } = detector({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2 });
  d.onLocalFailure('a', 'connect-failure', 0);
  d.onConnectSuccess('a');
  d.onLocalFailure('a', 'timeout', 0);
  t.false(d.isEjected('a'), 'a connection made in between: the failures are not consecutive');
  d.onResponse('a', 200, 0);
  d.onLocalFailure('a', 'reset', 0);
  t.false(d.isEjected('a'), 'an answer in between: the failures are not consecutive');
  d.onLocalFailure('a', 'connect-failure', 0);
  t.true(d.isEjected('a'), 'two in a row');
});

test('consecutive gateway errors eject on 502/503/504 only; a 500 breaks the run', (t) => {
  const { d } = detector({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 });
  d.onResponse('a', 502, 0);
  d.onResponse('a', 500, 0);
  d.onResponse('a', 504, 0);
  t.false(d.isEjected('a'));
  d.onResponse('a', 503, 0);
  t.true(d.isEjected('a'));
});

test('an ejected host returns after baseEjectionTime, checked at the interval sweep', (t) => {
  const { d, events } = detector();
  for (let i = 0; i < 3; i++) d.onResponse('a', 503, 100);
  t.true(d.isEjected('a'));
  t.is(d.ejectionTime('a'), 10_000);
  sweepUntil(d, 1000, 10_000);
  t.true(d.isEjected('a'), 'still out at 10.0 s: ejected at 0.1 s');
  d.sweep(11_000);
  t.false(d.isEjected('a'), 'back at the first sweep past 10.1 s');
  t.deepEqual(
    events.map((e) => e.action),
    ['eject', 'uneject'],
  );
});

test('the second ejection lasts twice as long; healthy intervals let the multiplier decay', (t) => {
  const { d } = detector();
  const eject = (at: number) => {
    for (let i = 0; i < 3; i++) d.onResponse('a', 503, at);
  };
  eject(0);
  d.sweep(10_000);
  t.false(d.isEjected('a'));
  eject(10_000); // again, before any healthy interval passed
  t.is(d.ejectionTime('a'), 20_000, 'base × 2');
  d.sweep(29_000);
  t.true(d.isEjected('a'));
  d.sweep(30_000);
  t.false(d.isEjected('a'));
  // two healthy sweeps: the multiplier goes 2 → 0
  d.sweep(31_000);
  d.sweep(32_000);
  eject(32_500);
  t.is(d.ejectionTime('a'), 10_000, 'back to the base time');
});

test('the ejection time is capped at maxEjectionTime', (t) => {
  const { d } = detector({ maxEjectionTimeMs: 25_000 });
  let now = 0;
  for (let n = 0; n < 5; n++) {
    for (let i = 0; i < 3; i++) d.onResponse('a', 503, now);
    t.true(d.ejectionTime('a') <= 25_000);
    now += d.ejectionTime('a');
    d.sweep(now);
    t.false(d.isEjected('a'));
  }
  t.is(d.timesEjected('a'), 5);
});

test("the multiplier stops growing at the cap (Envoy's max_ejection_time), so healthy intervals bring a host that failed for long back to the base time", (t) => {
  // base 10 s, cap 25 s: Envoy grows the multiplier only while base × multiplier < cap + base,
  // so it stops at 4 (ceil(25 / 10) + 1) and four healthy intervals take it back to 0
  const { d } = detector({ maxEjectionTimeMs: 25_000 });
  let now = 0;
  for (let n = 0; n < 12; n++) {
    for (let i = 0; i < 3; i++) d.onResponse('a', 503, now);
    now += d.ejectionTime('a');
    d.sweep(now); // back, and failing again at once: no healthy interval in between
  }
  t.is(d.timesEjected('a'), 12);
  for (let i = 0; i < 3; i++) d.sweep((now += 1000));
  for (let i = 0; i < 3; i++) d.onResponse('a', 503, now);
  t.is(d.ejectionTime('a'), 20_000, 'three healthy intervals: multiplier 4 → 1, then × 2 for this ejection');
  d.sweep((now += 20_000));
  for (let i = 0; i < 4; i++) d.sweep((now += 1000));
  for (let i = 0; i < 3; i++) d.onResponse('a', 503, now);
  t.is(d.ejectionTime('a'), 10_000, 'four healthy intervals: back to the base time');
});

test('property: after any run of back-to-back ejections, ceil(max / base) + 1 healthy intervals restore the base ejection time', (t) => {
  holds(
    t,
    fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 30 }), (baseS, capFactor, runs) => {
      const base = baseS * 1000;
      const max = base * capFactor + (capFactor > 1 ? 500 : 0);
      const { d } = detector({ baseEjectionTimeMs: base, maxEjectionTimeMs: max });
      let now = 0;
      for (let n = 0; n < runs; n++) {
        for (let i = 0; i < 3; i++) d.onResponse('a', 503, now);
        assert.ok(d.ejectionTime('a') <= max, `ejection ${n + 1} lasts ${d.ejectionTime('a')} ms, above the cap ${max}`);
        now += d.ejectionTime('a');
        d.sweep(now);
        assert.ok(!d.isEjected('a'));
      }
      for (let i = 0; i < Math.ceil(max / base) + 1; i++) d.sweep((now += 1000));
      for (let i = 0; i < 3; i++) d.onResponse('a', 503, now);
      assert.equal(d.ejectionTime('a'), base);
    }),
  );
});

test('a new endpoint set without an ejected host forgets its ejection: the count drops, later ejections and panic see only the hosts there', (t) => {
  let changes = 0;
  const d = new OutlierDetector(config({ maxEjectionPercent: 50, minHealthPercent: 50 }), () => changes++);
  d.setHosts(['a', 'b']);
  for (let i = 0; i < 3; i++) d.onResponse('a', 503, 0);
  t.is(d.ejected, 1);
  const before = changes;
  d.setHosts(['b', 'c']); // a is gone (scaled down) while ejected
  t.is(d.ejected, 0);
  t.true(changes > before, 'the cluster is told the usable set changed');
  t.false(d.isEjected('a'));
  for (let i = 0; i < 3; i++) d.onResponse('b', 503, 0);
  t.true(d.isEjected('b'), 'the only ejection now: always allowed (a count left at 1 would make it 2 of 2, past 50%)');
  t.false(d.panic(), 'one of two healthy is not below 50%');
  d.setHosts(['b', 'c', 'a']);
  t.false(d.isEjected('a'), 'a host that comes back starts clean');
  t.is(d.ejected, 1);
});

type Op =
  | { op: 'fail'; host: number }
  | { op: 'ok'; host: number }
  | { op: 'tick' }
  | { op: 'endpoints'; hosts: number[] };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('fail' as const), host: fc.nat({ max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('ok' as const), host: fc.nat({ max: 5 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('tick' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('endpoints' as const), hosts: fc.uniqueArray(fc.nat({ max: 5 }), { minLength: 1, maxLength: 6 }) }) },
);

test('property: under endpoint churn the ejected count is the number of present hosts ejected, and a new ejection respects maxEjectionPercent', (t) => {
  holds(
    t,
    fc.property(fc.array(opArb, { maxLength: 80 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 }), (ops, maxPercent, minHealth) => {
      let present = ['h0', 'h1', 'h2', 'h3'];
      const ejectedNow = () => present.filter((h) => d.isEjected(h)).length;
      const d = new OutlierDetector(
        config({ consecutive5xxErrors: 2, maxEjectionPercent: maxPercent, minHealthPercent: minHealth, baseEjectionTimeMs: 3000 }),
        () => {},
        (e) => {
          if (e.action !== 'eject') return;
          const n = ejectedNow();
          assert.ok(n === 1 || (100 * n) / present.length <= maxPercent, `${e.host} ejected: ${n} of ${present.length} out, max ${maxPercent}%`);
        },
      );
      d.setHosts(present);
      let now = 0;
      for (const o of ops) {
        if (o.op === 'fail') d.onResponse(`h${o.host}`, 503, now);
        else if (o.op === 'ok') d.onResponse(`h${o.host}`, 200, now);
        else if (o.op === 'tick') d.sweep((now += 1000));
        else d.setHosts((present = o.hosts.map((h) => `h${h}`)));
        const n = ejectedNow();
        assert.equal(d.ejected, n, `after ${JSON.stringify(o)}: count ${d.ejected}, ${n} present hosts ejected`);
        assert.equal(d.panic(), n > 0 && (100 * (present.length - n)) / present.length < minHealth, 'panic');
      }
    }),
    { numRuns: 300 },
  );
});

test('never more than maxEjectionPercent ejected, but one ejection is always allowed', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 100 }), (n, maxPercent) => {
      const hosts = Array.from({ length: n }, (_, i) => `h${i}`);
      const { d } = detector({ maxEjectionPercent: maxPercent }, hosts);
      for (const h of hosts) for (let i = 0; i < 3; i++) d.onResponse(h, 503, 0);
      const ejected = hosts.filter((h) => d.isEjected(h)).length;
      const allowed = Math.max(1, Math.floor((maxPercent * n) / 100));
      t.is(ejected, Math.min(n, allowed), `${n} hosts, max ${maxPercent}%: ${ejected} ejected`);
    }),
  );
});

test('panic: below minHealthPercent healthy hosts, balancing ignores ejections', (t) => {
  const { d } = detector({ minHealthPercent: 50 });
  for (let i = 0; i < 3; i++) d.onResponse('a', 503, 0);
  t.false(d.panic(), '75% healthy');
  for (let i = 0; i < 3; i++) d.onResponse('b', 503, 0);
  t.false(d.panic(), '50% healthy is not below 50%');
  for (let i = 0; i < 3; i++) d.onResponse('c', 503, 0);
  t.true(d.panic(), '25% healthy');
  const istioDefault = detector({ minHealthPercent: 0 }).d;
  for (const h of ['a', 'b', 'c', 'd']) for (let i = 0; i < 3; i++) istioDefault.onResponse(h, 503, 0);
  t.false(istioDefault.panic(), "Istio's default 0 never panics");
});

test('latency ejection (beyond Istio, off by default) ejects a host whose p99 stays far above its peers', (t) => {
  const off = detector().d;
  for (let i = 0; i < 50; i++) off.onResponse('a', 200, 0, 500);
  off.sweep(1000);
  t.false(off.isEjected('a'), 'off unless configured');
  const { d } = detector({ latencyEjection: { factor: 5, minRequests: 20 } });
  for (let i = 0; i < 50; i++) {
    d.onResponse('a', 200, 0, 400);
    for (const h of ['b', 'c', 'd']) d.onResponse(h, 200, 0, 10);
  }
  d.sweep(1000);
  t.true(d.isEjected('a'));
  t.false(d.isEjected('b'));
});

test('disabled detection ejects nothing, and a policy change lets ejected hosts back', (t) => {
  const off = detector({ enabled: false }).d;
  for (let i = 0; i < 10; i++) off.onResponse('a', 503, 0);
  t.false(off.isEjected('a'));
  const { d } = detector();
  for (let i = 0; i < 3; i++) d.onResponse('a', 503, 0);
  t.true(d.isEjected('a'));
  d.configure(config({ enabled: false }));
  t.false(d.isEjected('a'));
});
