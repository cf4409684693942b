// Tests that need root and the kernel (netns, cgroups, eBPF). Outside CI they are skipped
// when not root; in CI (`CI=true`) a suite that cannot run fails instead of skipping.
import test from 'ava';
import { spawn } from 'node:child_process';

export const isRoot = process.getuid?.() === 0;
export const inCi = process.env.CI === 'true';

/**
 * True when the privileged tests of `suite` can run. Otherwise registers one test in their
 * place: failing in CI, skipped elsewhere.
 */
export function canRunPrivileged(suite: string): boolean {
  if (isRoot) return true;
  if (inCi) test(`${suite}: needs root (netns, cgroups, eBPF) and CI runs as root`, (t) => t.fail('not running as root in CI'));
  else test.skip(`${suite}: needs root (netns, cgroups, eBPF)`, () => {});
  return false;
}

export function run(
  cmd: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (input !== undefined) c.stdin!.end(input);
  });
}

export function runWithInput(cmd: string, args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(cmd, args, undefined, input);
}
