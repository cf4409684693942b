// One lab for the privileged tests of a test file: brought up before them and taken down
// after them (also when one fails), with what the tests ask of it: its nodes, pods and
// Services by name, and commands run in a pod or node (`nodemesh lab exec`).
import test from 'ava';
import { labDown, labExecCommand, labUp, type LabState, type LabUpOptions } from '../../deploy/lab/lab.js';
import { run } from './privileged.js';

export interface Lab {
  /** the lab as labUp left it (from the test.before hook on) */
  readonly state: LabState;
  node(name: string): LabState['nodes'][number];
  pod(name: string): LabState['pods'][number];
  service(name: string): LabState['services'][number];
  /** Runs argv in `target` (`namespace/pod`, or a node); resolves its exit code and output. */
  exec(target: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** As exec, for a command that must succeed: resolves its stdout, rejects with its stderr. */
  output(target: string, argv: string[]): Promise<string>;
}

/**
 * Registers the file's test.before (labUp with `opts`, then `ready`) and test.after.always
 * (labDown) hooks; call it where the file's tests are registered.
 */
export function labPerFile(opts: LabUpOptions & { name: string }, ready?: (lab: Lab) => Promise<void>): Lab {
  let state: LabState | undefined;
  const named = <T extends { name: string }>(items: T[], name: string, what: string): T => {
    const found = items.find((i) => i.name === name);
    if (!found) throw new Error(`lab ${opts.name} has no ${what} ${name}`);
    return found;
  };
  const lab: Lab = {
    get state() {
      if (!state) throw new Error(`lab ${opts.name} is not up`);
      return state;
    },
    node: (name) => named(lab.state.nodes, name, 'node'),
    pod: (name) => named(lab.state.pods, name, 'pod'),
    service: (name) => named(lab.state.services, name, 'Service'),
    async exec(target, argv) {
      const cmd = await labExecCommand({ name: opts.name, target, argv });
      return run(cmd.argv[0]!, cmd.argv.slice(1), cmd.env);
    },
    async output(target, argv) {
      const r = await lab.exec(target, argv);
      if (r.code !== 0) throw new Error(`${target}: ${argv.join(' ')}: exit ${r.code}: ${r.stderr}`);
      return r.stdout;
    },
  };
  test.before(async () => {
    state = await labUp(opts);
    await ready?.(lab);
  });
  test.after.always(async () => {
    await labDown({ name: opts.name });
  });
  return lab;
}
