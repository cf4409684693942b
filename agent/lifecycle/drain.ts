// Draining: once an agent stops accepting (a stop, or a successor took its listeners), the
// connections it holds may finish for a while before what is left is closed. Kubernetes
// gives a pod terminationGracePeriodSeconds (30 s by default) between SIGTERM and SIGKILL,
// so the default drain ends well inside it.
import { setTimeout as sleep } from 'node:timers/promises';

export const DEFAULT_DRAIN_MS = 20_000;
const POLL_MS = 100;

/**
 * Resolves when `open()` counts no connection, `ms` passed, or `cut` resolved (a second
 * signal): whichever comes first; says which.
 */
export async function drain(open: () => Promise<number>, ms: number, cut: Promise<unknown>): Promise<'drained' | 'timeout' | 'cut'> {
  const deadline = Date.now() + ms;
  let interrupted = false;
  void cut.then(() => (interrupted = true));
  for (;;) {
    if (interrupted) return 'cut';
    if ((await open()) === 0) return 'drained';
    if (Date.now() >= deadline) return 'timeout';
    await sleep(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
  }
}
