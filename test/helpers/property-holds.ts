// fast-check properties inside an ava test: a failure shows fast-check's counterexample
// and seed in the test's own report.
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';

/** The property holds; otherwise fails with fast-check's counterexample. */
export function holds<T>(t: ExecutionContext, property: fc.IProperty<T>, params: fc.Parameters<T> = {}): void {
  const out = fc.check(property, params);
  t.false(out.failed, fc.defaultReportMessage(out) ?? '');
}
