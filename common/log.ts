// pino JSON logs, one child logger per module: `const log = logger('agent/proxy')`.
// Level from NODEMESH_LOG_LEVEL (default info). Logs go to stderr so stdout stays free
// for CLI output.
import pino, { type Logger } from 'pino';

const root: Logger = pino(
  { level: process.env.NODEMESH_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: false }),
);

export function logger(module: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ module, ...bindings });
}

export type { Logger };

/**
 * Changes the level of the loggers created from now on (child loggers keep the level they
 * were made with): the CLI quiets the modules it is about to load when it prints for people.
 */
export function setLogLevel(level: string): void {
  root.level = level;
}
