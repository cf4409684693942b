// Per-workload fairness (agent/per-workload-fairness.ts): the pending queue never exceeds its
// limit, serves sources round-robin, lets a light source in by evicting the heaviest one's
// newest request, and gives a lone source the whole queue; the L4 connection counter keeps a
// quarter of the limit for other sources.
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { FairQueue, perSourceConnectionCap, SourceCounter } from '../../agent/cluster/per-workload-fairness.js';
import { holds } from '../helpers/property-holds.js';

type QueueOp = { push: string } | { shift: true } | { remove: number } | { drain: true };

const queueOpArb: fc.Arbitrary<QueueOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ push: fc.constantFrom('a', 'b', 'c', 'd') }) },
  { weight: 3, arbitrary: fc.record({ shift: fc.constant(true as const) }) },
  { weight: 1, arbitrary: fc.record({ remove: fc.nat({ max: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ drain: fc.constant(true as const) }) },
);

/**
 * The fair queue's rules stated plainly: sources in rotation order, each with its FIFO; a
 * full queue admits a request only by taking the newest slot of the source holding the most
 * (the first such in rotation order), and only when that source would still hold more than
 * the newcomer's source; a served source goes to the back of the rotation; an emptied
 * source leaves it.
 */
class ReferenceFairQueue {
  rotation: { source: string; items: number[] }[] = [];
  constructor(readonly limit: number) {}
  get size(): number {
    return this.rotation.reduce((n, e) => n + e.items.length, 0);
  }
  private entry(source: string) {
    return this.rotation.find((e) => e.source === source);
  }
  push(source: string, item: number): { admitted: boolean; evicted: number | undefined } {
    let evicted: number | undefined;
    if (this.size >= this.limit) {
      const most = Math.max(0, ...this.rotation.map((e) => e.items.length));
      const heavy = this.rotation.find((e) => e.items.length === most);
      const mine = this.entry(source)?.items.length ?? 0;
      if (!heavy || heavy.source === source || mine + 1 >= heavy.items.length) return { admitted: false, evicted: undefined };
      evicted = heavy.items.pop();
      if (heavy.items.length === 0) this.rotation = this.rotation.filter((e) => e !== heavy);
    }
    const e = this.entry(source) ?? this.rotation[this.rotation.push({ source, items: [] }) - 1]!;
    e.items.push(item);
    return { admitted: true, evicted };
  }
  shift(): number | undefined {
    const e = this.rotation.shift();
    if (!e) return undefined;
    const item = e.items.shift();
    if (e.items.length > 0) this.rotation.push(e);
    return item;
  }
  remove(source: string, item: number): boolean {
    const e = this.entry(source);
    const i = e ? e.items.indexOf(item) : -1;
    if (!e || i < 0) return false;
    e.items.splice(i, 1);
    if (e.items.length === 0) this.rotation = this.rotation.filter((x) => x !== e);
    return true;
  }
  drain(): number[] {
    const all = this.rotation.flatMap((e) => e.items);
    this.rotation = [];
    return all;
  }
}

test('property: any sequence of requests, serves, departures and drains does what the stated rules say, and the queue never exceeds its limit', (t) => {
  holds(
    t,
    fc.property(fc.integer({ min: 0, max: 8 }), fc.array(queueOpArb, { maxLength: 100 }), (limit, ops) => {
      const q = new FairQueue<number>(limit);
      const ref = new ReferenceFairQueue(limit);
      const sourceOf = new Map<number, string>();
      let id = 0;
      ops.forEach((op, i) => {
        const at = `op ${i} ${JSON.stringify(op)}`;
        if ('push' in op) {
          const item = id++;
          sourceOf.set(item, op.push);
          assert.deepEqual(q.push(op.push, item), ref.push(op.push, item), at);
        } else if ('shift' in op) {
          assert.equal(q.shift(), ref.shift(), at);
        } else if ('remove' in op) {
          const source = sourceOf.get(op.remove) ?? 'a';
          assert.equal(q.remove(source, op.remove), ref.remove(source, op.remove), at);
          assert.equal(q.remove('z', op.remove), false, `${at}: from a source that holds nothing`);
        } else {
          const got: number[] = [];
          q.drain((x) => got.push(x));
          assert.deepEqual(got.sort(), ref.drain().sort(), at);
        }
        assert.ok(q.size <= limit, at);
        assert.equal(q.size, ref.size, at);
        for (const s of ['a', 'b', 'c', 'd', 'z']) assert.equal(q.pendingOf(s), ref.rotation.find((e) => e.source === s)?.items.length ?? 0, `${at}: ${s}`);
      });
    }),
    { numRuns: 500 },
  );
});

test('a lone source gets the whole queue; a second source gets in by taking the newest slot of the first', (t) => {
  const q = new FairQueue<string>(4);
  for (let i = 0; i < 4; i++) t.true(q.push('noisy', `n${i}`).admitted);
  t.false(q.push('noisy', 'n4').admitted, 'full for the source that fills it');
  const r = q.push('quiet', 'q0');
  t.true(r.admitted);
  t.is(r.evicted, 'n3', "the heaviest source's newest request gives way");
  t.is(q.pendingOf('noisy'), 3);
  // a second quiet request evens 3:1 out to 2:2
  t.true(q.push('quiet', 'q1').admitted);
  t.false(q.push('quiet', 'q2').admitted, '2:2 is fair; taking another slot would not be');
});

test('sources are served round-robin, each in its own order', (t) => {
  const q = new FairQueue<string>(100);
  for (let i = 0; i < 5; i++) q.push('a', `a${i}`);
  q.push('b', 'b0');
  q.push('b', 'b1');
  q.push('c', 'c0');
  const order: string[] = [];
  for (let x = q.shift(); x !== undefined; x = q.shift()) order.push(x);
  t.deepEqual(order, ['a0', 'b0', 'c0', 'a1', 'b1', 'a2', 'a3', 'a4']);
});

test('a request whose client left is taken out', (t) => {
  const q = new FairQueue<string>(10);
  q.push('a', 'x');
  q.push('a', 'y');
  t.true(q.remove('a', 'x'));
  t.false(q.remove('a', 'x'));
  t.is(q.shift(), 'y');
  t.is(q.size, 0);
});

test('L4 connections: one source holds at most three quarters of a limit of 4 or more', (t) => {
  t.is(perSourceConnectionCap(1), 1);
  t.is(perSourceConnectionCap(3), 3);
  t.is(perSourceConnectionCap(4), 3);
  t.is(perSourceConnectionCap(100), 75);
  const c = new SourceCounter();
  let noisy = 0;
  while (c.tryAcquire('noisy', 8)) noisy++;
  t.is(noisy, 6);
  t.true(c.tryAcquire('quiet', 8));
  t.true(c.tryAcquire('quiet', 8));
  t.false(c.tryAcquire('quiet', 8), 'the limit itself holds');
  c.release('noisy');
  t.true(c.tryAcquire('other', 8));
});

test('L4 connections: a release gives the slot back to the limit and to its source; a source that holds nothing releases nothing', (t) => {
  const c = new SourceCounter();
  c.release('nobody');
  t.is(c.size, 0);
  for (let i = 0; i < 3; i++) t.true(c.tryAcquire('a', 4));
  t.false(c.tryAcquire('a', 4), 'three quarters of 4');
  t.true(c.tryAcquire('b', 4));
  t.is(c.size, 4);
  t.false(c.tryAcquire('c', 4), 'the limit');
  c.release('a');
  t.is(c.size, 3);
  t.true(c.tryAcquire('a', 4), 'a may hold three again');
  c.release('b');
  c.release('b');
  t.is(c.size, 3, 'b held one');
  t.true(c.tryAcquire('b', 4));
  for (let i = 0; i < 3; i++) c.release('a');
  t.is(c.size, 1);
  t.true(c.tryAcquire('a', 2), 'below 4 a source may take the whole limit');
  t.false(c.tryAcquire('a', 2));
  t.deepEqual([2, 5, 7, 8, 9, 12].map(perSourceConnectionCap), [2, 4, 6, 6, 7, 9]);
});

test('a source whose last queued request was taken out joins the rotation at the back when it queues again', (t) => {
  const q = new FairQueue<string>(10);
  q.push('A', 'a1');
  q.push('B', 'b1');
  t.true(q.remove('A', 'a1'));
  q.push('A', 'a2');
  t.is(q.shift(), 'b1', 'B waited longer: A lost its place when its queue emptied');
  t.is(q.shift(), 'a2');
  t.is(q.shift(), undefined);
});
