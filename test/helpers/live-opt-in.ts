// Live opt-in as the lab tests see it: which pods a node's agent has enrolled (its
// /debug/state, read from the lab's host, which the lab's agents trust), waited for until it
// changes, and the bound a change must land within.

import os from 'node:os';
import { eventually } from './eventually.js';

/**
 * The "within a second", scaled by the load per core when the machine is busier
 * than one runnable task per core (several lab files and helpers share 2 cores here); never
 * below 1 s. Read when the change is made, so it is the load of that moment.
 */
export function optInBoundMs(): number {
  return Math.round(1_000 * Math.max(1, (1.5 * os.loadavg()[0]!) / os.cpus().length));
}

interface EnrolledEntry {
  uid: string;
  ip: string;
  netns: string;
  cni?: { containerId: string };
}

/** The pods (namespace/name) the agent at `agentAdmin` has enrolled now. */
export async function enrolledPods(agentAdmin: string): Promise<EnrolledEntry[]> {
  const res = await fetch(`http://${agentAdmin}/debug/state`, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`GET ${agentAdmin}/debug/state: ${res.status}`);
  return ((await res.json()) as { enrolled: EnrolledEntry[] }).enrolled;
}

/**
 * Resolves the time (ms since the epoch) at which the agent was first seen with `uid`
 * enrolled (`want` true) or not (false), polling every 10 ms.
 */
export async function waitEnrolment(agentAdmin: string, uid: string, want: boolean, timeoutMs = 20_000): Promise<number> {
  return eventually(
    async () => {
      const has = (await enrolledPods(agentAdmin)).some((p) => p.uid === uid);
      return has === want ? Date.now() : undefined;
    },
    timeoutMs,
    `${uid} ${want ? 'enrolled' : 'released'} by the agent at ${agentAdmin}`,
  );
}
