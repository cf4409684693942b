// The long-running commands (control plane, agent) run until SIGTERM or SIGINT. Its own
// file, light, so the agent does not load the control plane to wait for a signal.

/** Resolves with the next SIGTERM or SIGINT. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}
