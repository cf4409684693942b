// The long-running commands (control plane, agent) run until SIGTERM or SIGINT. Its own
// file, light, so the agent does not load the control plane to wait for a signal.
//
// One listener per signal, installed at the first wait and kept for the process's life: a
// listener removed after the first signal and added again for the next wait (what each wait
// did alone before) left a moment with none, in which a second SIGTERM meets the default
// action and kills the process mid-drain. A stop sends two close together: a container
// runtime's or the lab's signal to the process group, and a supervisor passing its own on
// (deploy/lab/lab-supervisor.ts); an agent killed so left its proxy workers behind it. A
// signal that comes while nothing waits is kept for the next wait (a second signal during a
// stop still cuts the drain short, however soon it came).

const waiting: ((sig: NodeJS.Signals) => void)[] = [];
let unclaimed: NodeJS.Signals | undefined;
let installed = false;

function onSignal(sig: NodeJS.Signals): void {
  if (waiting.length === 0) {
    unclaimed = sig;
    return;
  }
  for (const resolve of waiting.splice(0)) resolve(sig);
}

/** Resolves with the next SIGTERM or SIGINT (every wait open when it comes), or one that came while nothing waited. */
export function untilSignal(): Promise<NodeJS.Signals> {
  if (!installed) {
    installed = true;
    // Node's signal handles are unref'd: they keep no process alive
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  if (unclaimed !== undefined) {
    const sig = unclaimed;
    unclaimed = undefined;
    return Promise.resolve(sig);
  }
  return new Promise((resolve) => waiting.push(resolve));
}
