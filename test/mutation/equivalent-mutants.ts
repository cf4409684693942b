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

export const EQUIVALENT: Equivalent[] = [];
