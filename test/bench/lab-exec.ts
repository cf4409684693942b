// Running the suite's programs inside a lab's pods and nodes (`nodemesh lab exec`), bounded
// in time: a command that outlives its bound is killed with its whole process group and the
// scenario says which command hung. Also where the processes under measurement are found
// (through the lab's cgroups, not the pids of the state file) and what they cost
// (/proc/<pid>/stat, /proc/<pid>/status).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { labExecCommand } from '../../deploy/lab/lab.js';
import { packagePath } from '../../common/paths.js';

const POD_PROGRAMS = packagePath('dist', 'test', 'bench', 'pods');
/** A program of the suite's pods (test/bench/pods/, built). */
export const podProgram = (name: string) => path.join(POD_PROGRAMS, name);

export interface ExecResult {
  stdout: string;
  stderr: string;
}

/** Runs argv in a lab target (`ns/pod` or `node/NAME`); resolves its stdout, rejects on a non-zero exit or the bound. */
export async function labRun(lab: string, target: string, argv: string[], timeoutMs: number): Promise<ExecResult> {
  const cmd = await labExecCommand({ name: lab, target, argv });
  return new Promise((resolve, reject) => {
    const c = spawn(cmd.argv[0]!, cmd.argv.slice(1), { env: cmd.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      killGroup(c);
      reject(new Error(`${target}: \`${argv.join(' ')}\` did not finish within ${timeoutMs} ms (killed); stderr: ${tail(stderr)}`));
    }, timeoutMs);
    c.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${target}: \`${argv.join(' ')}\` exited ${code ?? signal}: ${tail(stderr) || tail(stdout)}`));
    });
  });
}

/** Starts argv in a lab target with a pipe to its stdin (held-connection client); the caller ends it. */
export async function labSpawn(lab: string, target: string, argv: string[]): Promise<ChildProcess> {
  const cmd = await labExecCommand({ name: lab, target, argv });
  return spawn(cmd.argv[0]!, cmd.argv.slice(1), { env: cmd.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
}

export function killGroup(c: ChildProcess): void {
  if (c.pid === undefined || c.exitCode !== null) return;
  try {
    process.kill(-c.pid, 'SIGKILL');
  } catch {
    c.kill('SIGKILL');
  }
}

function tail(s: string): string {
  return s.trim().split('\n').slice(-6).join(' | ');
}

/** The last JSON object a program printed (the suite's pod programs print one per result). */
export function lastJson<T>(stdout: string, what: string): T {
  const line = stdout.trim().split('\n').filter(Boolean).pop();
  if (!line) throw new Error(`${what} printed nothing`);
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${what} printed no JSON: ${line.slice(0, 200)}`);
  }
}

/** The pids in a cgroup v2 directory (not its children). */
export async function cgroupPids(cgroup: string): Promise<number[]> {
  const text = await readFile(path.join(cgroup, 'cgroup.procs'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map(Number);
}

export async function comm(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
}

let clockTicks: number | undefined;

/** USER_HZ: the unit of /proc/<pid>/stat's CPU times (100 on Linux everywhere but in theory). */
export async function ticksPerSecond(): Promise<number> {
  if (clockTicks === undefined) {
    const out = await new Promise<string>((resolve) => {
      const c = spawn('getconf', ['CLK_TCK'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let s = '';
      c.stdout.setEncoding('utf8').on('data', (d: string) => (s += d));
      c.on('close', () => resolve(s));
      c.on('error', () => resolve(''));
    });
    clockTicks = Number(out.trim()) || 100;
  }
  return clockTicks;
}

/**
 * CPU seconds a process has used (user + system, all its threads): fields 14 and 15 of
 * /proc/<pid>/stat, counted after the command name's closing parenthesis.
 */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  return (Number(fields[11]) + Number(fields[12])) / (await ticksPerSecond());
}

/** The parent's pid (field 4 of /proc/<pid>/stat), 0 when the process is gone. */
export async function parentPid(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? 0);
}

/** Resident set size in bytes (VmRSS of /proc/<pid>/status). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Busy and idle CPU time summed over the machine's CPUs so far (os.cpus(), in ms). */
function machineTimes(): { busy: number; idle: number } {
  let busy = 0;
  let idle = 0;
  for (const c of os.cpus()) {
    busy += c.times.user + c.times.nice + c.times.sys + c.times.irq;
    idle += c.times.idle;
  }
  return { busy, idle };
}

/**
 * How busy the whole machine was from now until stop() is called: the share of all its CPUs'
 * time that was not idle (0–1). A reading taken while the machine is busier than ~0.9 says
 * how much CPU there was to share, not how the measured processes scale.
 */
export function machineBusy(): { stop(): number } {
  const t0 = machineTimes();
  return {
    stop() {
      const t1 = machineTimes();
      const busy = t1.busy - t0.busy;
      const all = busy + (t1.idle - t0.idle);
      return all > 0 ? busy / all : 0;
    },
  };
}

/** Sum of cpuSeconds over pids. */
export async function cpuOf(pids: number[]): Promise<number> {
  let s = 0;
  for (const p of pids) s += await cpuSeconds(p);
  return s;
}

/**
 * Waits until no process's RSS moved by more than `toleranceBytes` (default 1 MiB) over the
 * last 20 s (readings 5 s apart): after a burst (a node's pods enrolled at once, 10,000
 * connections closed) V8 shrinks its heap and the agent returns freed native memory over the
 * following minute. Seconds it took, or undefined when it was still moving after `maxSeconds`.
 */
export async function rssSettled(pids: number[], maxSeconds: number, toleranceBytes = 2 ** 20): Promise<{ seconds: number | undefined }> {
  const t0 = performance.now();
  const readings: number[][] = [];
  for (;;) {
    readings.push(await Promise.all(pids.map((p) => rssBytes(p))));
    const last = readings.slice(-5);
    if (
      last.length === 5 &&
      pids.every((_, i) => Math.max(...last.map((r) => r[i]!)) - Math.min(...last.map((r) => r[i]!)) <= toleranceBytes)
    )
      return { seconds: (performance.now() - t0) / 1000 };
    if (performance.now() - t0 > maxSeconds * 1000) return { seconds: undefined };
    await new Promise((r) => setTimeout(r, 5000));
  }
}

// --- the suite's temporary directories --------------------------------------------------

const tempDirs = new Set<string>();
const TEMP_PREFIX = 'nodemesh-bench-';
/** what mkdtemp names with the suite's prefixes (not the logs a failed pods lab keeps) */
const TEMP_NAME = /^nodemesh-bench-(?:pods-|cp-)?[A-Za-z0-9]{6}$/;

/**
 * A temporary directory of the suite's (a lab's YAML, certificates, haproxy configs): its
 * user removes it with removeBenchTempDir, and a signal's cleanup (run.ts) removes every one
 * still there.
 */
export async function benchTempDir(kind = ''): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `${TEMP_PREFIX}${kind}`));
  tempDirs.add(dir);
  return dir;
}

export async function removeBenchTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Every directory benchTempDir made that is still there (a signal stopped the suite). */
export async function removeBenchTempDirs(): Promise<void> {
  for (const dir of [...tempDirs]) await removeBenchTempDir(dir);
}

/** Those a suite killed before its cleanup left (only one suite runs at a time: its labs have fixed names). */
export async function removeStaleBenchTempDirs(parent = os.tmpdir()): Promise<string[]> {
  const stale = (await readdir(parent).catch(() => [] as string[])).filter((n) => TEMP_NAME.test(n));
  for (const n of stale) await rm(path.join(parent, n), { recursive: true, force: true });
  return stale;
}
