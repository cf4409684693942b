// A pause that is itself the behaviour under test: a connection held quiet past (or short of)
// an idle timeout, traffic paced at a given rate, a period in which something must not happen.
// Never a way to wait for something to happen — for that, wait for the event or the counter
// (eventually.ts). Every pause in test/unit and test/lab goes through here, so that `grep`
// shows the rest of the suite synchronises on events only.

/** Resolves after `ms` of real time; `why` names the behaviour the pause is part of. */
export function idleFor(ms: number, why: string): Promise<void> {
  void why; // read by people, not by the code: the reason the pause is not synchronisation
  return new Promise((r) => setTimeout(r, ms));
}
