// Waiting for something, for at most a while: whether `p` settled within `ms` (its timer
// cleared either way, so nothing keeps the process up or fires later).

/** Resolves true once `p` resolves, false after `ms` if it has not (a rejection counts as not). */
export async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  if (ms <= 0) return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => false,
      ),
      new Promise<false>((r) => (timer = setTimeout(r, ms, false))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
