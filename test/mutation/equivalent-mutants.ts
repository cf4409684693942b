// Surviving mutants that no test can kill because they behave exactly as the original: each
// with the reason. Matched by file, mutator, original and replacement text (and the line,
// when the same text occurs twice). Read by mutate.ts when it writes report.md.

export interface Equivalent {
  file: string;
  mutator: string;
  original: string;
  replacement: string;
  line?: number;
  reason: string;
}

const PICKER = 'agent/l7/weighted-picker.ts';

export const EQUIVALENT: Equivalent[] = [
  // --- weighted picker ---
  {
    file: PICKER,
    mutator: 'EqualityOperator',
    original: 'e.weight > 0',
    replacement: 'e.weight >= 0',
    reason: 'a weight of 0 then passes this test but is skipped by `if (w === 0) continue` on the next line',
  },
  {
    file: PICKER,
    mutator: 'ConditionalExpression',
    original: 'n === 0',
    replacement: 'false',
    reason: 'a shortcut: with no item the scan is empty and `this.items[n - 1]` is `this.items[-1]`, undefined, as the shortcut returns',
  },
  {
    file: PICKER,
    mutator: 'ConditionalExpression',
    original: 'n === 1',
    replacement: 'false',
    reason: 'a shortcut: with one item the scan `i < n - 1` is empty and the last item, the only one, is returned',
  },
  {
    file: PICKER,
    mutator: 'EqualityOperator',
    original: 'i < n - 1',
    replacement: 'i <= n - 1',
    reason: 'the last item needs no comparison: at i = n − 1, r < total always holds (random() < 1), so the scan returns the item the fall-through returns',
  },
  {
    file: PICKER,
    mutator: 'ArithmeticOperator',
    original: 'n - 1',
    replacement: 'n + 1',
    reason: 'as above: the scan reaches i = n − 1, where r < total always holds, and returns the last item before it could read past the array',
  },
];
