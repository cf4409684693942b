// Per-workload fairness (agent/per-workload-fairness.ts): the pending queue never exceeds its
// limit, serves sources round-robin, lets a light source in by evicting the heaviest one's
// newest request, and gives a lone source the whole queue; the L4 connection counter keeps a
// quarter of the limit for other sources.
import test from 'ava';
import fc from 'fast-check';
import { FairQueue, perSourceConnectionCap, SourceCounter } from '../../agent/cluster/per-workload-fairness.js';

test('the queue never holds more than its limit, and every request is either queued, served or refused', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 10 }),
      fc.array(fc.oneof(fc.record({ push: fc.constantFrom('a', 'b', 'c') }), fc.record({ shift: fc.constant(true) })), { maxLength: 80 }),
      (limit, ops) => {
        const q = new FairQueue<number>(limit);
        const queued = new Set<number>();
        let id = 0;
        for (const op of ops) {
          if ('push' in op) {
            const item = id++;
            const r = q.push(op.push, item);
            if (r.admitted) queued.add(item);
            if (r.evicted !== undefined) t.true(queued.delete(r.evicted), 'only a queued request is evicted');
          } else {
            const item = q.shift();
            if (item !== undefined) t.true(queued.delete(item));
          }
          t.true(q.size <= limit);
          t.is(q.size, queued.size);
        }
      },
    ),
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
