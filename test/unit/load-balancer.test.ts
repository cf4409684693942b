// Endpoint balancers (agent/load-balancer*.ts): peak-EWMA P2C prefers the faster endpoint,
// least request the less busy one, round robin takes turns, ring hash keeps a key on its
// endpoint and moves only the keys of an endpoint that leaves.
import test from 'ava';
import fc from 'fast-check';
import type { LbHost } from '../../agent/cluster/load-balancer/load-balancer.js';
import { LeastRequestBalancer } from '../../agent/cluster/load-balancer/least-request.js';
import { EWMA_DEFAULT_RTT_MS, observeRtt, peakEwmaCost, PeakEwmaBalancer } from '../../agent/cluster/load-balancer/peak-ewma.js';
import { RoundRobinBalancer } from '../../agent/cluster/load-balancer/round-robin.js';
import { ConsistentHashBalancer, hashString } from '../../agent/cluster/load-balancer/consistent-hash.js';
import { RandomBalancer } from '../../agent/cluster/load-balancer/random.js';
import { seededRandom } from '../helpers/seeded-random.js';

function host(key: string, now = 0): LbHost {
  return { key, active: 0, rttEstimate: EWMA_DEFAULT_RTT_MS, rttUpdatedAt: now };
}

/**
 * A closed-loop simulation on a fake clock: `concurrency` callers each send a request, wait
 * for it, send the next. Endpoint i answers in latencies[i] ms. Returns picks per endpoint.
 */
function simulate(pickFn: (hosts: LbHost[], now: number) => LbHost, latencies: number[], concurrency: number, requests: number, onDone?: (h: LbHost, rtt: number, now: number) => void): number[] {
  const hosts = latencies.map((_, i) => host(`10.0.0.${i}:80`));
  const picks = hosts.map(() => 0);
  // event queue of completions: [time, host index]
  const inflight: { at: number; i: number; sent: number }[] = [];
  let now = 0;
  let sent = 0;
  const send = () => {
    const h = pickFn(hosts, now);
    const i = hosts.indexOf(h);
    picks[i]!++;
    h.active++;
    inflight.push({ at: now + latencies[i]!, i, sent: now });
    sent++;
  };
  for (let c = 0; c < concurrency; c++) send();
  while (sent < requests) {
    inflight.sort((a, b) => a.at - b.at);
    const done = inflight.shift()!;
    now = done.at;
    const h = hosts[done.i]!;
    h.active--;
    onDone?.(h, now - done.sent, now);
    send();
  }
  return picks;
}

test('peak EWMA P2C sends most requests to the faster endpoint', (t) => {
  const lb = new PeakEwmaBalancer();
  const random = seededRandom(7);
  const picks = simulate((hosts, now) => lb.pick(hosts, { hash: undefined, random, now })!, [5, 50], 8, 4000, (h, rtt, now) => observeRtt(h, rtt, now));
  t.true(picks[0]! > 3 * picks[1]!, `fast ${picks[0]} vs slow ${picks[1]}`);
});

test('peak EWMA: a slow answer raises the estimate at once, fast ones bring it down over time', (t) => {
  const h = host('a', 0);
  observeRtt(h, 200, 10);
  t.is(h.rttEstimate, 200, 'the peak is taken as is');
  observeRtt(h, 10, 20);
  t.true(h.rttEstimate > 190, 'a fast answer 10 ms later barely moves it');
  observeRtt(h, 10, 30_000);
  t.true(h.rttEstimate < 20, 'after 3 decay periods it is near the observed latency');
  // the cost grows with pending requests
  const a = host('a', 0);
  const b = host('b', 0);
  b.active = 3;
  t.true(peakEwmaCost(b, 0) > peakEwmaCost(a, 0));
});

test('least request (P2C) prefers the endpoint with fewer requests in flight', (t) => {
  const lb = new LeastRequestBalancer();
  const random = seededRandom(3);
  const picks = simulate((hosts) => lb.pick(hosts, { hash: undefined, random, now: 0 })!, [5, 50], 8, 4000);
  t.true(picks[0]! > 3 * picks[1]!, `fast ${picks[0]} vs slow ${picks[1]}`);
  // with two hosts P2C compares both: the busier is never chosen
  const a = host('a');
  const b = host('b');
  a.active = 2;
  for (let i = 0; i < 20; i++) t.is(lb.pick([a, b], { hash: undefined, random, now: 0 }), b);
});

test('round robin takes turns; random picks every host', (t) => {
  const hosts = ['a', 'b', 'c'].map((k) => host(k));
  const rr = new RoundRobinBalancer();
  const ctx = { hash: undefined, random: seededRandom(1), now: 0 };
  t.deepEqual(
    Array.from({ length: 6 }, () => rr.pick(hosts, ctx)!.key),
    ['a', 'b', 'c', 'a', 'b', 'c'],
  );
  const seen = new Set(Array.from({ length: 200 }, () => new RandomBalancer().pick(hosts, ctx)!.key));
  t.is(seen.size, 3);
});

test('ring hash: the same key always lands on the same endpoint; a removed endpoint moves only its own keys', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 8 }), fc.array(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 20, maxLength: 60 }), (n, keys) => {
      const hosts = Array.from({ length: n }, (_, i) => host(`10.1.0.${i}:8080`));
      const lb = new ConsistentHashBalancer();
      const ctx = (k: string) => ({ hash: hashString(k), random: Math.random, now: 0 });
      const before = new Map<string, LbHost>(keys.map((k) => [k, lb.pick(hosts, ctx(k))!]));
      for (const k of keys) t.is(lb.pick(hosts, ctx(k)), before.get(k));
      const gone = hosts[0]!;
      const rest = hosts.slice(1);
      for (const k of keys) {
        const after = lb.pick(rest, ctx(k))!;
        if (before.get(k) !== gone) t.true(after === before.get(k), `key ${k} moved though its endpoint stayed`);
      }
    }),
    { numRuns: 50 },
  );
});

test('ring hash spreads keys over every endpoint', (t) => {
  const hosts = Array.from({ length: 4 }, (_, i) => host(`10.2.0.${i}:80`));
  const lb = new ConsistentHashBalancer();
  const counts = new Map<string, number>();
  for (let i = 0; i < 4000; i++) {
    const h = lb.pick(hosts, { hash: hashString(`user-${i}`), random: Math.random, now: 0 })!;
    counts.set(h.key, (counts.get(h.key) ?? 0) + 1);
  }
  for (const h of hosts) t.true((counts.get(h.key) ?? 0) > 500, `${h.key}: ${counts.get(h.key)}`);
});
