// What both demos share: the lab up (and down again if that fails), rounds until Ctrl-C (one
// with --once), and the lab torn down whatever happens. The exit code is the last round's.
import { spawn } from 'node:child_process';
import { labDown, labExecCommand, labUp, type LabState } from '../deploy/lab/lab.js';

export interface DemoRounds<S> {
  name: string;
  dir: string;
  once: boolean;
  say: (line: string) => void;
  /** what the rounds need once the lab is up (the lab's state, or its clusters') */
  prepare: (state: LabState) => Promise<S>;
  /** one round; true when the traffic went where the demo says it goes */
  round: (s: S, first: boolean) => Promise<boolean>;
  progress?: (step: string) => void;
}

export async function demoRounds<S>(d: DemoRounds<S>): Promise<number> {
  let state: LabState;
  try {
    state = await labUp({ dir: d.dir, name: d.name, ...(d.progress ? { progress: d.progress } : {}) });
  } catch (err) {
    await labDown({ name: d.name }).catch(() => {});
    throw err;
  }
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const s = await d.prepare(state);
    let ok = false;
    let first = true;
    do {
      ok = await d.round(s, first);
      first = false;
      if (d.once) break;
      d.say('next round in 5 s (Ctrl-C to stop and tear down)');
      for (let i = 0; i < 50 && !stopped; i++) await new Promise((r) => setTimeout(r, 100));
    } while (!stopped);
    return ok ? 0 : 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    d.say('tearing the lab down…');
    await labDown({ name: d.name });
    d.say('done: nothing of the lab is left');
  }
}

/** A command in a lab pod to its end: the JSON lines it printed. */
export async function execInPod(state: LabState, target: string, argv: string[], env: Record<string, string>): Promise<string[]> {
  const cmd = await labExecCommand({ name: state.name, target, argv });
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.argv[0]!, cmd.argv.slice(1), { cwd: state.dir, env: { ...cmd.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.on('error', reject);
    child.on('close', () => resolve(out.split('\n').filter((l) => l.startsWith('{'))));
  });
}

export function say(s: string): void {
  process.stdout.write(`[demo] ${s}\n`);
}
