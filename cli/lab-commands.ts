// `nodemesh lab up|exec|down|status`: the local cluster of netns nodes and pods.
import { parseArgs } from 'node:util';
import { formatLabStatus, labDown, labExec, labStatus, labUp, type LabUpOptions } from '../deploy/lab/lab.js';

export async function runLab(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'up': {
      const { values } = parseArgs({
        args: rest,
        options: { file: { type: 'string', short: 'f' }, name: { type: 'string' }, 'no-agents': { type: 'boolean' } },
      });
      if (!values.file) throw new Error('lab up: -f DIR is required (a directory of Kubernetes-shaped YAML)');
      const opts: LabUpOptions = { dir: values.file, agents: !values['no-agents'] };
      if (values.name) opts.name = values.name;
      const state = await labUp(opts);
      process.stdout.write(formatLabStatus(await labStatus({ name: state.name })) + '\n');
      return 0;
    }
    case 'exec': {
      const dash = rest.indexOf('--');
      const before = dash >= 0 ? rest.slice(0, dash) : rest;
      const argv = dash >= 0 ? rest.slice(dash + 1) : [];
      const { values, positionals } = parseArgs({ args: before, options: { name: { type: 'string' } }, allowPositionals: true });
      const target = positionals[0];
      if (!target || argv.length === 0) throw new Error('lab exec: usage `nodemesh lab exec NAMESPACE/POD|node/NODE -- CMD ARGS…`');
      return labExec({ target, argv, ...(values.name ? { name: values.name } : {}) });
    }
    case 'down': {
      const { values } = parseArgs({ args: rest, options: { name: { type: 'string' } } });
      const report = await labDown(values.name ? { name: values.name } : {});
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    case 'status': {
      const { values } = parseArgs({ args: rest, options: { name: { type: 'string' } } });
      process.stdout.write(formatLabStatus(await labStatus(values.name ? { name: values.name } : {})) + '\n');
      return 0;
    }
  }
  throw new Error(`lab: unknown subcommand "${sub ?? ''}" (up, exec, down, status)`);
}
