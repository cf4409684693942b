// Processes of the lab: short commands (`ip`, `nsenter … ss`), long-lived detached ones
// (control plane, agents, pods) and their end.
//
// A long-lived process is started as `sh -c 'echo $$ > CG/cgroup.procs && exec ENTER CMD'`
// so it is in its cgroup BEFORE the command opens any socket (cgroup membership survives
// exec; the eBPF connect hooks are attached to the cgroup), then enters the netns by exec
// too, so the pid recorded is the command's own. Each leads its own session (setsid), so
// the lab kills it as a process group; its output goes to a log file in the state dir.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NodemeshError } from '../../common/errors.js';

/** How a detached process enters its network namespace. */
export type NetnsEntry =
  /** `ip netns exec`: also bind-mounts /etc/netns/<name>/* (hosts) — for pods */
  | { via: 'ip-netns-exec'; netns: string }
  /** `nsenter --net`: no remount of /sys, so bpffs and cgroupfs stay visible — agents */
  | { via: 'nsenter'; netns: string }
  | { via: 'none' };

export interface DetachedSpec {
  argv: string[];
  /** cgroup v2 directory to join before exec */
  cgroup: string;
  netns: NetnsEntry;
  cwd: string;
  env: NodeJS.ProcessEnv;
  log: string;
}

/** Children this process spawned and has not seen exit (libuv reaps them). */
const spawned = new Set<ChildProcess>();

export function trackedChildren(): number {
  return spawned.size;
}

/** `sh -c` wrapper argv: join `cgroup`, then exec into the netns and the command. */
export function enterArgv(cgroup: string | undefined, netns: NetnsEntry, argv: string[]): string[] {
  const enter =
    netns.via === 'ip-netns-exec' ? ['ip', 'netns', 'exec', netns.netns] : netns.via === 'nsenter' ? ['nsenter', `--net=/run/netns/${netns.netns}`, '--'] : [];
  if (!cgroup) return [...enter, ...argv];
  return ['sh', '-c', 'cg=$1; shift; echo $$ > "$cg/cgroup.procs" && exec "$@"', 'sh', cgroup, ...enter, ...argv];
}

/** Starts a detached process (own session), output appended to `spec.log`; returns its pid. */
export async function spawnDetached(spec: DetachedSpec): Promise<number> {
  mkdirSync(path.dirname(spec.log), { recursive: true });
  const fd = openSync(spec.log, 'a');
  const [file, ...args] = enterArgv(spec.cgroup, spec.netns, spec.argv);
  let child: ChildProcess;
  try {
    child = spawn(file!, args, { cwd: spec.cwd, env: spec.env, detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  spawned.add(child);
  child.once('exit', (code, signal) => {
    spawned.delete(child);
    // how it ended, in its own log (as a JSON line, like the processes' own): a process that
    // dies by a signal before it logs anything otherwise leaves no trace of why
    if (code !== 0) {
      const line = { level: 40, time: Date.now(), module: 'lab', pid: child.pid, ...(signal ? { signal } : { code }), msg: `the lab's process exited (${signal ? `signal ${signal}` : `code ${code}`})` };
      try {
        // appended to the log only if it is still there: never re-created under a lab down
        const logFd = openSync(spec.log, constants.O_WRONLY | constants.O_APPEND);
        try {
          writeSync(logFd, `${JSON.stringify(line)}\n`);
        } finally {
          closeSync(logFd);
        }
      } catch {
        // its lab's logs are gone already (lab down)
      }
    }
  });
  child.unref();
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      spawned.delete(child);
      reject(new NodemeshError('NM_ERR_LAB', `cannot start ${spec.argv.join(' ')}: ${err.message}`, { cause: err }));
    });
    child.once('spawn', () => resolve(child.pid!));
  });
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a short command; a non-zero exit is an NM_ERR_LAB naming the command and its stderr. */
export function run(file: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim() || err.message;
        reject(new NodemeshError('NM_ERR_LAB', `\`${[file, ...args].join(' ')}\` failed: ${why}`, { cause: err }));
      } else resolve({ stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a command with the caller's stdio; resolves to its exit code (128+n on signal n). */
export function runInherit(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', cwd: opts.cwd, env: opts.env ?? process.env });
    spawned.add(child);
    child.once('error', (err) => {
      spawned.delete(child);
      reject(new NodemeshError('NM_ERR_LAB', `cannot run ${argv.join(' ')}: ${err.message}`, { cause: err }));
    });
    child.once('exit', (code, signal) => {
      spawned.delete(child);
      resolve(code ?? 128 + (signal ? signalNumber(signal) : 0));
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  return os.constants.signals[signal] ?? 0;
}

/** Alive and not a zombie. */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // "pid (comm) S …": the state follows the last ')'
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return stat !== '' && state !== 'Z' && state !== 'X';
}

/** Sends `signal` to a process group, falling back to the pid if the group is gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
    return;
  } catch {
    // not a group leader any more (or gone): try the pid alone
  }
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/**
 * SIGTERM to each process group, up to `graceMs` for them to exit (agents unpin on
 * SIGTERM), then SIGKILL to what is left. Resolves to the pids that were alive.
 */
export async function stopProcesses(pids: Iterable<number>, graceMs: number): Promise<number[]> {
  const alive: number[] = [];
  for (const pid of new Set(pids)) if (await isAlive(pid)) alive.push(pid);
  if (alive.length === 0) return alive;
  for (const pid of alive) signalGroup(pid, 'SIGTERM');
  const gone = async () => (await Promise.all(alive.map(isAlive))).every((a) => !a);
  if (!(await waitFor(gone, graceMs, 50))) {
    for (const pid of alive) if (await isAlive(pid)) signalGroup(pid, 'SIGKILL');
    await waitFor(gone, 2_000, 50);
  }
  return alive;
}

/** Polls `check` every `everyMs` until it is true or `timeoutMs` passes; returns the last result. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    // ref'd on purpose: someone awaits this wait, and the wait is bounded by timeoutMs
    await sleep(everyMs);
  }
}

/** The last `lines` lines of a log file, for error messages. */
export async function logTail(file: string, lines = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const tail = text.trimEnd().split('\n').slice(-lines).join('\n');
  return tail ? tail.replace(/^/gm, '    | ') : '    (empty)';
}
