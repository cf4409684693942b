// Endpoint balancers (agent/load-balancer*.ts): peak-EWMA P2C prefers the faster endpoint,
// least request the less busy one, round robin takes turns, ring hash keeps a key on its
// endpoint and moves only the keys of an endpoint that leaves.
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { balancerName, newBalancer, twoChoices, type LbHost } from '../../agent/cluster/load-balancer/load-balancer.js';
import '../../agent/cluster/load-balancer/strategies.js';
import { LeastRequestBalancer } from '../../agent/cluster/load-balancer/least-request.js';
import { EWMA_DEFAULT_RTT_MS, observeRtt, peakEwmaCost, PeakEwmaBalancer } from '../../agent/cluster/load-balancer/peak-ewma.js';
import { RoundRobinBalancer } from '../../agent/cluster/load-balancer/round-robin.js';
import { buildRing, ConsistentHashBalancer, hashString, POINTS_PER_HOST } from '../../agent/cluster/load-balancer/consistent-hash.js';
import { RandomBalancer } from '../../agent/cluster/load-balancer/random.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { holds } from '../helpers/property-holds.js';

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
  holds(
    t,
    fc.property(fc.integer({ min: 2, max: 8 }), fc.array(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 20, maxLength: 60 }), (n, keys) => {
      const hosts = Array.from({ length: n }, (_, i) => host(`10.1.0.${i}:8080`));
      const lb = new ConsistentHashBalancer();
      const ctx = (k: string) => ({ hash: hashString(k), random: Math.random, now: 0 });
      const before = new Map<string, LbHost>(keys.map((k) => [k, lb.pick(hosts, ctx(k))!]));
      for (const k of keys) assert.equal(lb.pick(hosts, ctx(k)), before.get(k));
      const gone = hosts[0]!;
      const rest = hosts.slice(1);
      for (const k of keys) {
        const after = lb.pick(rest, ctx(k))!;
        if (before.get(k) !== gone) assert.ok(after === before.get(k), `key ${k} moved though its endpoint stayed`);
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

const ctxOf = (hash: number | undefined, random: () => number = Math.random, now = 0) => ({ hash, random, now });

test('every balancer answers nothing for no host and the host for one', (t) => {
  for (const lb of [new LeastRequestBalancer(), new PeakEwmaBalancer(), new RoundRobinBalancer(), new RandomBalancer(), new ConsistentHashBalancer()]) {
    const name = lb.constructor.name;
    t.is(lb.pick([], ctxOf(7)), undefined, name);
    t.is(lb.pick([], ctxOf(undefined)), undefined, name);
    const only = host('10.0.0.1:80');
    t.is(lb.pick([only], ctxOf(7)), only, name);
    t.is(lb.pick([only], ctxOf(undefined)), only, name);
  }
});

test("the policy's balancer: consistentHash wins over simple; LEAST_REQUEST when unset; PASSTHROUGH balances as the default", (t) => {
  t.is(balancerName(undefined), 'LEAST_REQUEST');
  t.is(balancerName({ simple: 'RANDOM' } as never), 'RANDOM');
  t.is(balancerName({} as never), 'LEAST_REQUEST');
  t.is(balancerName({ simple: 'ROUND_ROBIN', consistentHash: { kind: 'header', name: 'x' } } as never), 'CONSISTENT_HASH');
  const kind = (policy: unknown) => newBalancer(policy as never).constructor.name;
  t.is(kind(undefined), 'LeastRequestBalancer');
  t.is(kind({ simple: 'LEAST_REQUEST' }), 'LeastRequestBalancer');
  t.is(kind({ simple: 'ROUND_ROBIN' }), 'RoundRobinBalancer');
  t.is(kind({ simple: 'RANDOM' }), 'RandomBalancer');
  t.is(kind({ simple: 'PEAK_EWMA' }), 'PeakEwmaBalancer');
  t.is(kind({ simple: 'PASSTHROUGH' }), 'LeastRequestBalancer');
  t.is(kind({ simple: 'ROUND_ROBIN', consistentHash: { kind: 'header', name: 'x' } }), 'ConsistentHashBalancer');
  t.not(newBalancer(undefined), newBalancer(undefined), 'a new balancer (its own state) per cluster');
});

test('two choices: two distinct hosts, every ordered pair equally likely', (t) => {
  const random = seededRandom(5);
  const n = 4;
  const counts = new Map<string, number>();
  for (let i = 0; i < 12_000; i++) {
    const [a, b] = twoChoices(n, random);
    t.not(a, b);
    counts.set(`${a}${b}`, (counts.get(`${a}${b}`) ?? 0) + 1);
  }
  // 12 ordered pairs, 1,000 each expected (sd ≈ 30)
  t.is(counts.size, 12);
  for (const [pair, c] of counts) t.true(Math.abs(c - 1000) < 200, `${pair}: ${c}`);
  t.deepEqual(twoChoices(2, () => 0), [0, 1]);
  t.deepEqual(twoChoices(2, () => 0.99), [1, 0]);
});

test('ties: least request and peak EWMA keep the first of the two choices', (t) => {
  // random 0 then 0: choices [0, 1]
  const zeros = () => 0;
  const hosts = [host('a'), host('b')];
  t.is(new LeastRequestBalancer().pick(hosts, ctxOf(undefined, zeros))!.key, 'a');
  t.is(new PeakEwmaBalancer().pick(hosts, ctxOf(undefined, zeros))!.key, 'a');
  hosts[0]!.active = 1;
  t.is(new LeastRequestBalancer().pick(hosts, ctxOf(undefined, zeros))!.key, 'b', 'fewer in flight wins');
  t.is(new PeakEwmaBalancer().pick(hosts, ctxOf(undefined, zeros))!.key, 'b', 'the same estimate, fewer in flight');
});

test('peak EWMA arithmetic: the cost is the estimate times (requests in flight + 1); a faster answer pulls the estimate by e^(−elapsed / 10 s)', (t) => {
  const h = host('a', 0);
  h.rttEstimate = 100;
  t.is(peakEwmaCost(h, 0), 100);
  h.active = 2;
  t.is(peakEwmaCost(h, 0), 300);
  const g = host('g', 0);
  g.rttEstimate = 100;
  observeRtt(g, 20, 10_000);
  t.true(Math.abs(g.rttEstimate - (100 * Math.exp(-1) + 20 * (1 - Math.exp(-1)))) < 1e-9, `${g.rttEstimate}`);
  t.is(g.rttUpdatedAt, 10_000);
  t.true(Math.abs(peakEwmaCost(g, 20_000) - g.rttEstimate) < 1e-9 && g.rttEstimate < 100 * Math.exp(-1) * Math.exp(-1) + 20, 'a read decays it toward 0');
  observeRtt(g, 500, 20_001);
  t.is(g.rttEstimate, 500, 'a slower answer is taken at once');
});

test('round robin: a pick from no host does not move the turn; fewer hosts than the turn restart it', (t) => {
  const rr = new RoundRobinBalancer();
  const hosts = ['a', 'b', 'c'].map((k) => host(k));
  t.is(rr.pick(hosts, ctxOf(undefined))!.key, 'a');
  t.is(rr.pick([], ctxOf(undefined)), undefined);
  t.is(rr.pick(hosts, ctxOf(undefined))!.key, 'b');
  // a turn past the first: an empty pick between b and c neither restarts nor skips it
  t.is(rr.pick([], ctxOf(undefined)), undefined);
  t.is(rr.pick(hosts, ctxOf(undefined))!.key, 'c');
  t.is(rr.pick(hosts.slice(0, 2), ctxOf(undefined))!.key, 'a');
});

/** FNV-1a (32-bit) over UTF-16 code units, from its specification. */
function fnv1a(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Number((BigInt((h ^ s.charCodeAt(i)) >>> 0) * 16777619n) & 0xffffffffn);
  return h;
}

/** murmur3's fmix32 finisher. */
function fmix32(x: number): number {
  const step = (v: number, shift: number, mul: bigint) => Number((BigInt((v ^ (v >>> shift)) >>> 0) * mul) & 0xffffffffn);
  const h = step(step(x, 16, 0x85ebca6bn), 13, 0xc2b2ae35n);
  return (h ^ (h >>> 16)) >>> 0;
}

test('the hash is FNV-1a finished with fmix32, the same on every node: a user stays on one endpoint whichever node proxy it passes', (t) => {
  // the reference against FNV-1a's published test vectors
  t.is(fnv1a(''), 0x811c9dc5);
  t.is(fnv1a('a'), 0xe40c292c);
  t.is(fnv1a('foobar'), 0xbf9cf968);
  holds(
    t,
    fc.property(fc.string({ maxLength: 30 }), (s) => hashString(s) === fmix32(fnv1a(s))),
    { numRuns: 500 },
  );
});

test('the ring: 160 points per host, owned by the first point at or after the hash (clockwise), wrapping past the last', (t) => {
  const hosts = ['10.3.0.1:80', '10.3.0.2:80', '10.3.0.3:80'].map((k) => host(k));
  const ring = buildRing(hosts);
  t.is(ring.hashes.length, 3 * POINTS_PER_HOST);
  const lb = new ConsistentHashBalancer();
  for (const k of [0, 1, 100, 479]) {
    t.is(lb.pick(hosts, ctxOf(ring.hashes[k]!)), ring.owners[k], `a hash equal to point ${k}`);
    t.is(lb.pick(hosts, ctxOf(ring.hashes[k]! - 1)), ring.owners[k], `just below point ${k}`);
  }
  t.is(lb.pick(hosts, ctxOf(ring.hashes[479]! + 1)), ring.owners[0], 'past the last point: the first');
  t.is(lb.pick(hosts, ctxOf(-1)), lb.pick(hosts, ctxOf(0xffffffff)), 'hashes are unsigned 32-bit');
});

test('the ring does not depend on the order hosts are listed in, even where two points collide', (t) => {
  // found by search: point 108 of the first and point 4 of the second hash alike
  const a = host('10.0.3.253:8080');
  const b = host('10.0.4.129:8080');
  const collision = hashString('10.0.3.253:8080_108');
  t.is(collision, hashString('10.0.4.129:8080_4'));
  t.is(new ConsistentHashBalancer().pick([a, b], ctxOf(collision)), a, 'ties go to the smaller key');
  t.is(new ConsistentHashBalancer().pick([b, a], ctxOf(collision)), a);
});

test('a request without a hash input (no such header) gets a random host', (t) => {
  const hosts = ['a', 'b', 'c', 'd'].map((k) => host(k));
  const lb = new ConsistentHashBalancer();
  const random = seededRandom(3);
  const seen = new Set(Array.from({ length: 200 }, () => lb.pick(hosts, ctxOf(undefined, random))!.key));
  t.is(seen.size, 4);
});

test('peak EWMA: a clock reading earlier than the last update (a pick timed before another answer was recorded) leaves the estimate as it is, never above its peak', (t) => {
  const h = host('a', 0);
  observeRtt(h, 100, 1_000);
  t.is(peakEwmaCost(h, 900), 100, 'a read 100 ms "before" the update');
  t.is(h.rttEstimate, 100);
  observeRtt(h, 20, 500);
  t.is(h.rttEstimate, 100, 'a faster answer with no time elapsed does not pull it down');
});
