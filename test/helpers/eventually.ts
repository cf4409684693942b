// Waiting in real time for something that happens asynchronously (a socket closing, a
// counter moving, work that completes after a fake-clock step).

/**
 * Polls `check` (every `everyMs`) until it returns a truthy value and resolves that; rejects
 * naming `what` after `timeoutMs`.
 */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
  what = 'condition',
  everyMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
