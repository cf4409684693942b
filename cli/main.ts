// `nodemesh` — one CLI for every role: the control plane, the node agent, the lab, and the
// operator's views (status, check, analyze, config status, tap), plus the demo. The commands
// are declared once in commands.ts; help, parsing and suggestions come from that table.
import { NodemeshError } from '../common/errors.js';
import { logger } from '../common/log.js';
import { COMMANDS } from './commands.js';
import { findCommand, runCommand, suggestCommand, topLevelHelp, usageFrom, UsageError, type Command } from './command-table.js';

async function main(argv: string[]): Promise<{ code: number; command?: Command }> {
  const [first] = argv;
  if (first === undefined) {
    process.stderr.write(topLevelHelp(COMMANDS));
    return { code: 2 };
  }
  if (first === 'help' || first === '--help' || first === '-h') {
    const target = argv[1] !== undefined ? findCommand(COMMANDS, argv.slice(1)) : undefined;
    process.stdout.write(target ? (await import('./command-table.js')).commandHelp(target.command) : topLevelHelp(COMMANDS));
    return { code: 0 };
  }
  if (first === '--version') argv = ['version', ...argv.slice(1)];
  const found = findCommand(COMMANDS, argv);
  if (!found) {
    const near = suggestCommand(COMMANDS, argv);
    throw new UsageError(`unknown command "${argv.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ')}"${near ? `; did you mean "${near}"?` : ''} (nodemesh --help lists the commands)`);
  }
  try {
    return { code: await runCommand(found.command, found.args), command: found.command };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) throw usageFrom(err, found.command);
    throw err;
  }
}

try {
  const { code } = await main(process.argv.slice(2));
  // long-running roles (control, agent) resolve only when they stop
  process.exitCode = code;
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`nodemesh: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    if (!(err instanceof NodemeshError)) logger('cli').debug({ err }, 'failed');
    process.stderr.write(`nodemesh: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
