// `nodemesh lab up|exec|annotate|down|status`: the local cluster of netns nodes and pods.
//
// `lab up` talks to a person on a terminal: one line per step and "ready in N s", the
// modules' pino logs quieted to errors. With --log-format json, or when stdout is not a
// terminal (a script, CI), it keeps the pino JSON logs on stderr as before and prints no
// progress; --quiet prints nothing but errors. The first line says which it does.
import { setLogLevel } from '../common/log.js';
import { UsageError, outputFormat, type Values } from './command-table.js';
import { printData } from './output.js';

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export async function runLabUp(v: Values): Promise<number> {
  const dir = str(v.file);
  if (!dir) throw new UsageError('lab up: -f DIR is required (a directory of Kubernetes-shaped YAML)');
  const format = str(v['log-format']) ?? (process.stdout.isTTY ? 'text' : 'json');
  if (format !== 'text' && format !== 'json') throw new UsageError(`lab up: --log-format ${format}: expected text or json`);
  const quiet = v.quiet === true;
  if (format === 'text' || quiet) setLogLevel('error');
  const { formatLabStatus, labStatus, labUp } = await import('../deploy/lab/lab.js');
  const started = Date.now();
  const say = (s: string) => {
    if (!quiet && format === 'text') process.stdout.write(`${s}\n`);
  };
  say(`lab up: steps below; pino JSON logs with --log-format json`);
  const name = str(v.name);
  const state = await labUp({ dir, agents: v['no-agents'] !== true, kubernetes: v.kubernetes === true, ...(name ? { name } : {}), progress: (s) => say(`  … ${s}`) });
  say(`✔ lab ${state.name} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (!quiet) process.stdout.write(formatLabStatus(await labStatus({ name: state.name })) + '\n');
  return 0;
}

export async function runLabExec(v: Values, positionals: string[], argv: string[]): Promise<number> {
  const target = positionals[0];
  if (!target || argv.length === 0) throw new UsageError('lab exec: usage `nodemesh lab exec NAMESPACE/POD|node/NODE -- CMD ARGS…`');
  const { labExec } = await import('../deploy/lab/lab.js');
  const name = str(v.name);
  return labExec({ target, argv, ...(name ? { name } : {}) });
}

export async function runLabAnnotate(v: Values, positionals: string[]): Promise<number> {
  const [target, ...changes] = positionals;
  if (!target || changes.length === 0) throw new UsageError('lab annotate: usage `nodemesh lab annotate NAMESPACE/POD KEY=VALUE… | KEY-…`');
  const { labAnnotate, labState, parseAnnotations } = await import('../deploy/lab/lab.js');
  const parsed = parseAnnotations(changes);
  const name = str(v.name);
  const r = await labAnnotate(await labState(name), target, parsed, { overwrite: v.overwrite === true });
  const format = outputFormat(v.output);
  printData(process.stdout, format, r, () => `pod/${r.pod} ${r.changed ? 'annotated' : 'unchanged'} (${r.via === 'kubernetes' ? 'API server' : r.file})\n`);
  return 0;
}

export async function runLabDown(v: Values): Promise<number> {
  const { labDown } = await import('../deploy/lab/lab.js');
  const name = str(v.name);
  const report = await labDown(name ? { name } : {});
  const format = outputFormat(v.output);
  // the report was always printed as JSON: keep that for the default, tables are no better here
  printData(process.stdout, format === 'table' || format === 'wide' ? 'json' : format, report, () => '');
  return 0;
}

export async function runLabStatus(v: Values): Promise<number> {
  const { formatLabStatus, labStatus } = await import('../deploy/lab/lab.js');
  const name = str(v.name);
  const report = await labStatus(name ? { name } : {});
  printData(process.stdout, outputFormat(v.output), report, () => formatLabStatus(report) + '\n');
  return 0;
}
