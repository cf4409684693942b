// The outlier detector (agent/outlier-detection.ts) on a fake clock: Envoy's ejection state
// machine as Istio configures it.
import test from 'ava';
import fc from 'fast-check';
import type { OutlierDetection } from '../../control/api/snapshot-routing.js';
import { OutlierDetector, type OutlierEvent } from '../../agent/cluster/outlier-detection.js';

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
