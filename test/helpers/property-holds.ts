// fast-check properties inside an ava test. The property's body asserts with node:assert (or
// returns a boolean), never with ava's `t`: a failed `t` assertion inside would be recorded at
// once with the first, unshrunk counterexample. Here fast-check shrinks the failure to a
// minimal counterexample, and the test's report shows it with its seed and path (to replay:
// pass `{ seed, path }` as params) and the assertion that failed.
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';

/** The property holds; otherwise fails with fast-check's shrunk counterexample, seed and error. */
export function holds<T>(t: ExecutionContext, property: fc.IProperty<T>, params: fc.Parameters<T> = {}): void {
  const out = fc.check(property, params);
  const error = out.failed && out.errorInstance instanceof Error ? `\n${out.errorInstance.message}` : '';
  t.false(out.failed, `${fc.defaultReportMessage(out) ?? ''}${error}`);
}

/** The same for an async property (fc.asyncProperty). */
export async function holdsAsync<T>(t: ExecutionContext, property: fc.IAsyncProperty<T>, params: fc.Parameters<T> = {}): Promise<void> {
  const out = await fc.check(property, params);
  const error = out.failed && out.errorInstance instanceof Error ? `\n${out.errorInstance.message}` : '';
  t.false(out.failed, `${fc.defaultReportMessage(out) ?? ''}${error}`);
}
