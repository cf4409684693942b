// The `nodemesh` binary run as a user runs it (bin/nodemesh.js in a child process, no colour),
// with its exit code, stdout and stderr. A few at a time: each is a Node.js start, and a test
// file that walks every command would otherwise start dozens at once on a 2-core machine.
import { execFile } from 'node:child_process';
import { packagePath } from '../../common/paths.js';

const CLI = packagePath('bin', 'nodemesh.js');
const AT_ONCE = 3;
let running = 0;
const waiting: (() => void)[] = [];

export async function nodemesh(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  if (running >= AT_ONCE) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  } finally {
    running--;
    waiting.shift()?.();
  }
}
