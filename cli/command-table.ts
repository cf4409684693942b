// The command table's machinery: one declaration per command (its words, flags, summary and
// example), from which the parser, `--help`/`-h` on every command, the top-level usage and
// the suggestions for a mistyped flag or command are all derived. Parsing is node:util's
// parseArgs: an argument library would bring per-command help and suggestions, which are
// a few dozen lines here, at the cost of a dependency.
import { parseArgs } from 'node:util';
import { closest } from '../control/validate/fields.js';

export interface Flag {
  name: string;
  short?: string;
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** shown in the help as `--name VALUE` */
  value?: string;
  default?: string;
  env?: string;
  help: string;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  /** `['config', 'status']` */
  words: string[];
  summary: string;
  /** what follows the words in the usage line besides the flags (`NS/POD -- CMD…`) */
  args?: string;
  /** a longer explanation under the usage, when the summary is not enough */
  details?: string;
  flags: Flag[];
  example: string;
  /**
   * `delegate`: the command parses its own arguments (the long-running roles, whose flags
   * other modules own); the table gives them help and suggestions only.
   */
  parse?: 'table' | 'delegate';
  /** positionals allowed; after `--` everything is passed as `rest` */
  positionals?: boolean;
  run(values: Values, positionals: string[], rest: string[], raw: string[]): Promise<number>;
}

/** `-o json|yaml|wide|table`, for every command whose output is data. */
export const OUTPUT_FLAG: Flag = { name: 'output', short: 'o', type: 'string', value: 'FORMAT', default: 'table', help: 'table (aligned, for people), wide (more columns), json or yaml (for scripts)' };

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

const HELP_FLAG: Flag = { name: 'help', short: 'h', type: 'boolean', help: 'this help' };

/** A mistake in how the command was typed: exit 2 with the message and a pointer to --help. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function outputFormat(v: unknown): OutputFormat {
  const f = (v ?? 'table') as string;
  if (!(OUTPUT_FORMATS as readonly string[]).includes(f)) throw new UsageError(`-o ${f}: expected one of ${OUTPUT_FORMATS.join(', ')}`);
  return f as OutputFormat;
}

/** The command the words of argv name (the longest match), and the arguments after them. */
export function findCommand(table: readonly Command[], argv: readonly string[]): { command: Command; args: string[] } | undefined {
  let best: Command | undefined;
  for (const c of table) if (c.words.every((w, i) => argv[i] === w) && (!best || c.words.length > best.words.length)) best = c;
  return best ? { command: best, args: argv.slice(best.words.length) } : undefined;
}

/** A suggestion for words that name no command: `nodemesh stauts` → `status`. */
export function suggestCommand(table: readonly Command[], argv: readonly string[]): string | undefined {
  const candidates = table.map((c) => c.words.join(' '));
  const typed = argv.filter((a) => !a.startsWith('-')).slice(0, 2);
  for (let n = Math.min(2, typed.length); n > 0; n--) {
    const near = closest(typed.slice(0, n).join(' '), candidates);
    if (near) return near;
  }
  return undefined;
}

export function wantsHelp(args: readonly string[]): boolean {
  const dash = args.indexOf('--');
  return (dash >= 0 ? args.slice(0, dash) : args).some((a) => a === '--help' || a === '-h');
}

export async function runCommand(c: Command, args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    process.stdout.write(commandHelp(c));
    return 0;
  }
  if (c.parse === 'delegate') return c.run({}, [], [], args);
  const dash = args.indexOf('--');
  const before = dash >= 0 ? args.slice(0, dash) : args;
  const rest = dash >= 0 ? args.slice(dash + 1) : [];
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const f of [...c.flags, HELP_FLAG]) options[f.name] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) };
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: before, options, allowPositionals: c.positionals ?? false, strict: true }) as { values: Values; positionals: string[] };
  } catch (err) {
    throw usageFrom(err, c);
  }
  for (const f of c.flags) if (parsed.values[f.name] === undefined && f.default !== undefined) parsed.values[f.name] = f.type === 'boolean' ? f.default === 'true' : f.default;
  return c.run(parsed.values, parsed.positionals, rest, args);
}

/** parseArgs' error (or a delegated command's) → a UsageError with the nearest flag. */
export function usageFrom(err: unknown, c: Command): Error {
  const e = err as Error & { code?: string };
  const name = c.words.join(' ');
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const typed = /'(-{1,2}[^']+)'/.exec(e.message)?.[1] ?? '';
    const near = closest(typed.replace(/^-+/, ''), [...c.flags, HELP_FLAG].map((f) => f.name));
    return new UsageError(`${name}: unknown flag ${typed}${near ? `; did you mean --${near}?` : ''} (nodemesh ${name} --help lists them)`);
  }
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return new UsageError(`${name}: ${e.message.split('. ')[0]} (nodemesh ${name} --help)`);
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return new UsageError(`${name}: ${e.message} (nodemesh ${name} --help)`);
  return e;
}

export function commandHelp(c: Command): string {
  const name = `nodemesh ${c.words.join(' ')}`;
  const lines = [`${name} — ${c.summary}`, '', `usage: ${name}${c.flags.length ? ' [flags]' : ''}${c.args ? ` ${c.args}` : ''}`];
  if (c.details) lines.push('', ...c.details.split('\n').map((l) => `  ${l}`));
  const flags = [...c.flags, HELP_FLAG];
  const left = flags.map((f) => `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}`);
  const width = Math.max(...left.map((l) => l.length));
  lines.push('', 'flags:');
  flags.forEach((f, i) => {
    const extra = [f.default !== undefined ? `default ${f.default}` : '', f.env ? `env ${f.env}` : '', f.multiple ? 'repeatable' : ''].filter(Boolean).join('; ');
    lines.push(`  ${left[i]!.padEnd(width)}  ${f.help}${extra ? ` (${extra})` : ''}`);
  });
  lines.push('', 'example:', ...c.example.split('\n').map((l) => `  ${l}`), '');
  return lines.join('\n');
}

export function topLevelHelp(table: readonly Command[]): string {
  const left = table.map((c) => c.words.join(' '));
  const width = Math.max(...left.map((l) => l.length));
  return [
    'usage: nodemesh <command> [flags]     (nodemesh <command> --help: its flags and an example; nodemesh --version)',
    '',
    ...table.map((c, i) => `  ${left[i]!.padEnd(width)}  ${c.summary}`),
    '',
    '',
  ].join('\n');
}
