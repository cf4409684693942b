// Exponential backoff with jitter, for everything that tries again: the L7 engine's retries,
// the agent's control-plane stream, certificate requests. The ceiling doubles from `baseMs`
// with each attempt up to `maxMs`; the delay is drawn below it, so that many clients that
// failed together (every node, when the control plane restarted) do not come back together.
// Full jitter, a delay anywhere in [0, ceiling), spreads them most (AWS Architecture Blog,
// "Exponential Backoff And Jitter"; Envoy's "fully jittered exponential back-off").

export interface Backoff {
  baseMs: number;
  maxMs: number;
}

/** min(maxMs, baseMs·2^attempt), `attempt` 0 for the first wait (doubling stops at 2^30). */
export function backoffCeiling(b: Backoff, attempt: number): number {
  return Math.min(b.maxMs, b.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
}

/** Full jitter: uniform in [0, ceiling). `random` in [0, 1). */
export function fullJitterBackoff(b: Backoff, attempt: number, random: () => number = Math.random): number {
  return random() * backoffCeiling(b, attempt);
}

/** Equal jitter: uniform in [ceiling/2, ceiling), for a wait that must not shrink to nothing. */
export function equalJitterBackoff(b: Backoff, attempt: number, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(b, attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}
