// Weighted destinations (agent/weighted-picker.ts): each share lands within statistical
// tolerance of weight / sum, a zero weight is never picked, a lone Istio destination takes
// everything, a lone Gateway API backend of weight 0 nothing.
import test from 'ava';
import fc from 'fast-check';
import { WeightedPicker } from '../../agent/l7/weighted-picker.js';
import { seededRandom } from '../helpers/seeded-random.js';

test('each destination gets its share within 5 standard deviations; zero weights never', (t) => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 100 }), { minLength: 2, maxLength: 6 }), fc.integer(), (weights, seed) => {
      fc.pre(weights.some((w) => w > 0));
      const picker = new WeightedPicker(weights.map((w, i) => ({ item: i, weight: w })));
      const n = 4000;
      const counts = new Array<number>(weights.length).fill(0);
      const random = seededRandom(seed);
      for (let i = 0; i < n; i++) counts[picker.pick(random)!]!++;
      const sum = weights.reduce((a, b) => a + b, 0);
      weights.forEach((w, i) => {
        if (w === 0) return t.is(counts[i], 0, `weight 0 picked ${counts[i]} times`);
        const p = w / sum;
        const sd = Math.sqrt(n * p * (1 - p));
        t.true(Math.abs(counts[i]! - n * p) <= 5 * sd + 1, `weights ${weights}: #${i} got ${counts[i]}, expected ${n * p}`);
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
