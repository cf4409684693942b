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
    fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 12 }), fc.constantFrom(0, 500), fc.integer({ min: 1, max: 30 }), (baseS, capFactor, extra, runs) => {
      const base = baseS * 1000;
      // a cap that is a multiple of the base, or between two
      const max = base * capFactor + (capFactor > 1 ? extra : 0);
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
  holds(
    t,
    fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 100 }), (n, maxPercent) => {
      const hosts = Array.from({ length: n }, (_, i) => `h${i}`);
      const { d } = detector({ maxEjectionPercent: maxPercent }, hosts);
      for (const h of hosts) for (let i = 0; i < 3; i++) d.onResponse(h, 503, 0);
      const ejected = hosts.filter((h) => d.isEjected(h)).length;
      const allowed = Math.max(1, Math.floor((maxPercent * n) / 100));
      assert.equal(ejected, Math.min(n, allowed), `${n} hosts, max ${maxPercent}%: ${ejected} ejected`);
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

// --- edges of the state machine, one by one ---------------------------------------------------

/** A detector that records onChange calls and events. */
function watched(over: Partial<OutlierDetection> = {}, hosts = ['a', 'b', 'c', 'd']) {
  const events: OutlierEvent[] = [];
  let changes = 0;
  const d = new OutlierDetector(config(over), () => changes++, (e) => events.push(e));
  d.setHosts(hosts);
  return { d, events, changes: () => changes };
}

const fail = (d: OutlierDetector, host: string, n: number, status = 503, now = 0) => {
  for (let i = 0; i < n; i++) d.onResponse(host, status, now);
};

test('the events say what happened: eject with its reason, duration and count, overflow, uneject', (t) => {
  const { d, events } = watched({ maxEjectionPercent: 25, consecutiveGatewayErrors: 2, consecutive5xxErrors: 3 });
  fail(d, 'a', 3, 500);
  fail(d, 'b', 2, 502);
  d.sweep(10_000);
  const split = watched({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 1 });
  split.d.onLocalFailure('c', 'reset', 0);
  const latency = watched({ latencyEjection: { factor: 5, minRequests: 1 } }, ['a', 'b']);
  latency.d.onResponse('a', 200, 0, 1000);
  latency.d.onResponse('b', 200, 0, 10);
  latency.d.sweep(1000);
  t.deepEqual(events, [
    { action: 'eject', host: 'a', reason: 'consecutive-5xx', ejectionMs: 10_000, timesEjected: 1 },
    { action: 'overflow', host: 'b', reason: 'consecutive-gateway-errors', timesEjected: 0 },
    { action: 'uneject', host: 'a', timesEjected: 1 },
  ]);
  t.deepEqual(split.events, [{ action: 'eject', host: 'c', reason: 'consecutive-local-origin-failures', ejectionMs: 10_000, timesEjected: 1 }]);
  t.deepEqual(latency.events, [{ action: 'eject', host: 'a', reason: 'latency', ejectionMs: 10_000, timesEjected: 1 }]);
});

test('the cluster hears of a change only when the set of ejected hosts changes', (t) => {
  const { d, changes } = watched();
  d.sweep(1000);
  d.setHosts(['a', 'b', 'c', 'd', 'e']); // a host added
  d.setHosts(['a', 'b', 'c', 'd']); // a healthy host removed
  d.configure(config({ enabled: false })); // nothing ejected to let back
  d.configure(config());
  t.is(changes(), 0);
  fail(d, 'a', 3);
  t.is(changes(), 1, 'ejection');
  fail(d, 'a', 3);
  t.is(changes(), 1, 'more failures of an ejected host change nothing');
  d.sweep(5000);
  t.is(changes(), 1, 'a sweep that lets nobody back');
  d.sweep(10_000);
  t.is(changes(), 2, 'return');
});

test('an ejected host still answering (requests in flight, panic) is not ejected again: same count, same end', (t) => {
  const { d, events } = watched();
  fail(d, 'a', 3, 503, 0);
  fail(d, 'a', 6, 503, 5000);
  t.is(d.ejected, 1);
  t.is(d.timesEjected('a'), 1);
  t.is(events.length, 1);
  d.sweep(10_000);
  t.false(d.isEjected('a'), 'back 10 s after the first ejection, not after the later failures');
  t.is(d.ejected, 0);
});

test('a host back from ejection starts counting again: one failure does not eject it', (t) => {
  const { d } = watched({ consecutive5xxErrors: 3 });
  fail(d, 'a', 2);
  d.onLocalFailure('a', 'timeout', 0); // the third, as a 504
  t.true(d.isEjected('a'));
  d.sweep(10_000);
  d.onResponse('a', 503, 10_000);
  t.false(d.isEjected('a'));
  const gw = watched({ consecutive5xxErrors: 3, consecutiveGatewayErrors: 2 });
  fail(gw.d, 'a', 2, 502);
  t.true(gw.d.isEjected('a'), 'by gateway errors, which reset the 5xx count too');
  gw.d.sweep(10_000);
  fail(gw.d, 'a', 2, 500, 10_000);
  t.false(gw.d.isEjected('a'), 'two 5xx after the return are fewer than three');
});

test('what a 5xx is: 500 to 599; 502, 503 and 504 are the gateway errors', (t) => {
  for (const status of [500, 501, 599]) {
    const { d } = watched();
    fail(d, 'a', 3, status);
    t.true(d.isEjected('a'), `${status} is a 5xx`);
  }
  for (const status of [499, 600, 200]) {
    const { d } = watched();
    fail(d, 'a', 2);
    d.onResponse('a', status, 0);
    fail(d, 'a', 2);
    t.false(d.isEjected('a'), `${status} is not a 5xx and breaks the run`);
  }
  for (const status of [502, 503, 504]) {
    const { d } = watched({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 });
    fail(d, 'a', 2, status);
    t.true(d.isEjected('a'), `${status} is a gateway error`);
  }
});

test('a limit of 0 turns its counter off', (t) => {
  const local = watched({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 0 });
  for (let i = 0; i < 10; i++) local.d.onLocalFailure('a', 'connect-failure', 0);
  t.false(local.d.isEjected('a'), 'local-origin failures');
  const fivexx = watched({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 0 });
  fail(fivexx.d, 'a', 10);
  t.false(fivexx.d.isEjected('a'), '5xx and gateway errors');
});

test('disabled detection records nothing, and its sweeps change nothing: re-enabled, the multiplier is where it was', (t) => {
  const { d } = watched();
  fail(d, 'a', 3, 503, 0);
  d.sweep(10_000);
  fail(d, 'a', 3, 503, 10_000); // the second ejection: × 2
  d.configure(config({ enabled: false }));
  t.false(d.isEjected('a'), 'disabling lets every host back');
  t.is(d.ejected, 0);
  for (let i = 1; i <= 5; i++) d.sweep(10_000 + i * 1000);
  fail(d, 'a', 5, 503, 20_000);
  d.onLocalFailure('a', 'connect-failure', 20_000);
  t.false(d.isEjected('a'), 'nothing is counted while disabled');
  d.configure(config());
  fail(d, 'a', 3, 503, 30_000);
  t.is(d.ejectionTime('a'), 30_000, 'the third ejection: the disabled sweeps did not decay the multiplier');
});

test('a new policy keeps the hosts ejected under the old one, with their state', (t) => {
  const { d, changes } = watched();
  fail(d, 'a', 3);
  d.configure(config({ baseEjectionTimeMs: 20_000 }));
  t.true(d.isEjected('a'));
  t.is(changes(), 1, 'no change from the new policy');
  t.is(d.ejectionTime('a'), 20_000, 'the new base applies from now on');
});

test('the interval: the configured one, 10 s when unset; enabled as configured', (t) => {
  t.is(watched({ intervalMs: 1500 }).d.intervalMs, 1500);
  t.is(watched({ intervalMs: 0 }).d.intervalMs, 10_000);
  t.true(watched().d.enabled);
  const { d } = watched({ enabled: false });
  t.false(d.enabled);
  d.configure(config());
  t.true(d.enabled);
});

test("hosts the detector does not know are never ejected, and what they report is ignored", (t) => {
  const { d } = watched();
  fail(d, 'x', 5);
  d.onLocalFailure('x', 'connect-failure', 0);
  d.onConnectSuccess('x');
  t.false(d.isEjected('x'));
  t.is(d.timesEjected('x'), 0);
  t.is(d.ejectionTime('x'), 0);
  t.is(d.ejected, 0);
});

test('without maxEjectionTime the cap is 300 s, or baseEjectionTime when that is longer', (t) => {
  const times = (base: number) => {
    const { d } = watched({ baseEjectionTimeMs: base, maxEjectionTimeMs: 0 });
    const out: number[] = [];
    let now = 0;
    for (let i = 0; i < 4; i++) {
      fail(d, 'a', 3, 503, now);
      out.push(d.ejectionTime('a'));
      now += d.ejectionTime('a');
      d.sweep(now);
    }
    return out;
  };
  t.deepEqual(times(100_000), [100_000, 200_000, 300_000, 300_000]);
  t.deepEqual(times(400_000), [400_000, 400_000, 400_000, 400_000]);
});

test('latency ejection compares each p99 with the median p99, not the median latency: a host slow one time in twenty is an outlier', (t) => {
  const { d } = watched({ latencyEjection: { factor: 5, minRequests: 20 } });
  for (let i = 0; i < 100; i++) {
    d.onResponse('a', 200, 0, i % 20 === 0 ? 1000 : 10);
    for (const h of ['b', 'c', 'd']) d.onResponse(h, 200, 0, 10);
  }
  d.sweep(1000);
  t.deepEqual(['a', 'b', 'c', 'd'].filter((h) => d.isEjected(h)), ['a']);
});

test('latency ejection: the median of four p99s is the second lowest, whatever order the hosts were added in', (t) => {
  // p99s (bucket upper bounds): h0 1024, h1 128, h2 16, h3 16 → median 16, factor 5: > 80 is out
  const { d } = watched({ latencyEjection: { factor: 5, minRequests: 10 }, maxEjectionPercent: 100 }, ['h0', 'h1', 'h2', 'h3']);
  const ms = { h0: 1000, h1: 100, h2: 10, h3: 10 };
  for (let i = 0; i < 20; i++) for (const [h, v] of Object.entries(ms)) d.onResponse(h, 200, 0, v);
  d.sweep(1000);
  t.deepEqual(['h0', 'h1', 'h2', 'h3'].filter((h) => d.isEjected(h)), ['h0', 'h1']);
});

test('latency ejection with two hosts: the slower one is out when its p99 is above factor × the other', (t) => {
  const { d } = watched({ latencyEjection: { factor: 5, minRequests: 10 } }, ['a', 'b']);
  for (let i = 0; i < 20; i++) {
    d.onResponse('a', 200, 0, 200);
    d.onResponse('b', 200, 0, 10);
  }
  d.sweep(1000);
  t.true(d.isEjected('a'));
  t.false(d.isEjected('b'));
});

test('latency ejection: exactly factor × the median is not an outlier; latencies are bucketed by powers of two', (t) => {
  const run = (slowMs: number, fastMs: number, factor: number) => {
    const { d } = watched({ latencyEjection: { factor, minRequests: 5 } }, ['a', 'b', 'c']);
    for (let i = 0; i < 10; i++) {
      d.onResponse('a', 200, 0, slowMs);
      d.onResponse('b', 200, 0, fastMs);
      d.onResponse('c', 200, 0, fastMs);
    }
    d.sweep(1000);
    return d.isEjected('a');
  };
  t.false(run(20, 10, 2), 'p99 32 against 16: exactly 2 ×');
  t.true(run(40, 10, 2), 'p99 64 against 16');
  t.true(run(1, 0.5, 1.5), '1 ms is in the bucket [1, 2), 0.5 ms in [0, 1)');
  t.false(run(0, 0, 1), 'answers in 0 ms are in the first bucket');
  t.false(run(0, 3, 1.5), 'a host answering in 0 ms is counted in the first bucket (p99 1 ms), not past the last one');
});

test('latency ejection counts only hosts with minRequests answers that carry a latency, measured since the last sweep, and not ejected hosts', (t) => {
  const { d } = watched({ latencyEjection: { factor: 5, minRequests: 10 } }, ['a', 'b', 'c']);
  for (let i = 0; i < 9; i++) d.onResponse('a', 200, 0, 1000);
  for (let i = 0; i < 10; i++) for (const h of ['b', 'c']) d.onResponse(h, 200, 0, 10);
  for (let i = 0; i < 50; i++) d.onResponse('a', 200, 0); // answers without a latency
  d.sweep(1000);
  t.false(d.isEjected('a'), 'nine timed answers are fewer than minRequests');
  for (let i = 0; i < 10; i++) d.onResponse('b', 200, 0, 10);
  d.sweep(2000);
  t.false(d.isEjected('b'), 'the last interval alone: b is the only host with answers');
  // c ejected by errors: its latencies are left out of the median
  const e = watched({ latencyEjection: { factor: 5, minRequests: 10 } }, ['a', 'b', 'c', 'd']);
  fail(e.d, 'c', 3);
  for (let i = 0; i < 10; i++) {
    e.d.onResponse('a', 200, 0, 100);
    e.d.onResponse('b', 200, 0, 10);
    e.d.onResponse('c', 200, 0, 1);
    e.d.onResponse('d', 200, 0, 1);
  }
  e.d.sweep(1000);
  // p99s: a 128, b 16, d 2 → median 16: a is out; with c (2) the median would be 2, and b out too
  t.deepEqual(['a', 'b', 'd'].filter((h) => e.d.isEjected(h)), ['a']);
});

test('latencies recorded while latency ejection is off never count, and turning it off stops it', (t) => {
  const { d } = watched({}, ['a', 'b', 'c']);
  for (let i = 0; i < 20; i++) {
    d.onResponse('a', 200, 0, 1000);
    d.onResponse('b', 200, 0, 10);
    d.onResponse('c', 200, 0, 10);
  }
  d.configure(config({ latencyEjection: { factor: 5, minRequests: 10 } }));
  d.sweep(1000);
  t.false(d.isEjected('a'), 'nothing was measured before it was on');
  for (let i = 0; i < 20; i++) {
    d.onResponse('a', 200, 1000, 1000);
    d.onResponse('b', 200, 1000, 10);
  }
  d.configure(config());
  t.notThrows(() => d.sweep(2000));
  t.false(d.isEjected('a'), 'off again');
});
