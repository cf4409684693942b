// Weighted destinations (agent/weighted-picker.ts): each share lands within statistical
// tolerance of weight / sum, a zero weight is never picked, a lone Istio destination takes
// everything, a lone Gateway API backend of weight 0 nothing.
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { WeightedPicker } from '../../agent/l7/weighted-picker.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { holds } from '../helpers/property-holds.js';

test('each destination gets its share within 5 standard deviations; zero weights never', (t) => {
  holds(
    t,
    fc.property(fc.array(fc.nat({ max: 100 }), { minLength: 2, maxLength: 6 }), fc.integer(), (weights, seed) => {
      fc.pre(weights.some((w) => w > 0));
      const picker = new WeightedPicker(weights.map((w, i) => ({ item: i, weight: w })));
      const n = 4000;
      const counts = new Array<number>(weights.length).fill(0);
      const random = seededRandom(seed);
      for (let i = 0; i < n; i++) counts[picker.pick(random)!]!++;
      const sum = weights.reduce((a, b) => a + b, 0);
      weights.forEach((w, i) => {
        if (w === 0) return assert.equal(counts[i], 0, `weight 0 picked ${counts[i]} times`);
        const p = w / sum;
        const sd = Math.sqrt(n * p * (1 - p));
        assert.ok(Math.abs(counts[i]! - n * p) <= 5 * sd + 1, `weights ${weights}: #${i} got ${counts[i]}, expected ${n * p}`);
      });
    }),
    { numRuns: 60 },
  );
});

test('a 90/10 split over 2,000 picks lands within tolerance', (t) => {
  const picker = new WeightedPicker([
    { item: 'v1', weight: 90 },
    { item: 'v2', weight: 10 },
  ]);
  const random = seededRandom(42);
  let v2 = 0;
  for (let i = 0; i < 2000; i++) if (picker.pick(random) === 'v2') v2++;
  // 200 expected, sd ≈ 13.4
  t.true(v2 > 200 - 5 * 13.4 && v2 < 200 + 5 * 13.4, `v2 got ${v2}`);
});

test('one destination takes all in Istio, whatever its weight; Gateway API gives a lone weight 0 nothing', (t) => {
  t.is(new WeightedPicker([{ item: 'a', weight: 0 }]).pick(), 'a');
  t.is(new WeightedPicker([{ item: 'a', weight: 0 }], false).pick(), undefined);
  t.is(new WeightedPicker([{ item: 'a', weight: 3 }], false).pick(), 'a');
  t.is(new WeightedPicker([{ item: 'a', weight: 0 }, { item: 'b', weight: 0 }]).pick(), undefined, 'all zero: nothing to pick');
  t.is(new WeightedPicker<string>([]).pick(), undefined);
  // 0/100: every pick goes to the weighted one
  const p = new WeightedPicker([
    { item: 'v1', weight: 0 },
    { item: 'v2', weight: 100 },
  ]);
  for (let i = 0; i < 100; i++) t.is(p.pick(), 'v2');
});

test('a weight that is not a finite number (Infinity, NaN, negative) counts as zero: never picked, the others keep their shares', (t) => {
  const picker = new WeightedPicker([
    { item: 'inf', weight: Infinity },
    { item: 'a', weight: 1 },
    { item: 'nan', weight: NaN },
    { item: 'b', weight: 3 },
    { item: 'neg', weight: -5 },
  ]);
  t.is(picker.size, 2);
  t.is(picker.total, 4);
  const random = seededRandom(11);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 4000; i++) {
    const x = picker.pick(random)!;
    counts[x] = (counts[x] ?? 0) + 1;
  }
  t.deepEqual(Object.keys(counts).sort(), ['a', 'b']);
  // a: 1000 expected, sd ≈ 27
  t.true(Math.abs(counts.a! - 1000) < 5 * 27.4, `a got ${counts.a}`);
  t.is(new WeightedPicker([{ item: 'x', weight: Infinity }, { item: 'y', weight: -Infinity }]).pick(), undefined, 'nothing finite and positive: nothing to pick');
});

test('each destination owns the half-open interval [cumulative weight before it, its cumulative weight): a draw on a boundary goes to the next one', (t) => {
  const picker = new WeightedPicker([
    { item: 'a', weight: 1 },
    { item: 'zero', weight: 0 },
    { item: 'b', weight: 2 },
    { item: 'c', weight: 1 },
  ]);
  // total 4: a [0, 1), b [1, 3), c [3, 4)
  const at = (u: number) => picker.pick(() => u);
  t.deepEqual([0, 0.2, 0.25, 0.5, 0.7, 0.75, 0.99].map(at), ['a', 'a', 'b', 'b', 'b', 'c', 'c']);
});
