// A fetch bounded by a timer that holds the event loop. AbortSignal.timeout's timer is
// unref'd: polling a port that is going away (an agent or control plane just stopped), a
// request once left nothing holding ava's worker, which then finished the test as "Promise
// returned by test never resolved" (seen in CI). This one keeps the loop alive until the
// answer's headers arrive or the deadline aborts it.
export async function fetchWithin(url: string, ms: number): Promise<Response> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`no answer from ${url} within ${ms} ms`)), ms);
  try {
    return await fetch(url, { signal: ac.signal });
  } finally {
    clearTimeout(timer);
  }
}
