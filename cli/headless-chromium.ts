// Headless Chromium (Debian's `chromium` package) as a process: the DOM of a page after its
// scripts ran, or a screenshot of it. Used by `nodemesh demo` (the README's screenshot of the
// node dashboard) and by the tests that load the dashboard. Virtual time
// (--virtual-time-budget) lets the page's timers and fetches run to the budget without
// waiting for them in wall time; every run has its own profile directory, removed after, and a
// deadline after which the browser is killed.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The browser's path (NODEMESH_CHROMIUM, else Debian's), or undefined when none is installed. */
export function chromiumPath(): string | undefined {
  const env = process.env.NODEMESH_CHROMIUM;
  if (env) return env;
  return CANDIDATES.find((p) => existsSync(p));
}

export interface ChromiumRun {
  /** virtual milliseconds the page's timers may run before the DOM or picture is taken */
  budgetMs?: number;
  /** wall-clock deadline of the whole run */
  timeoutMs?: number;
  /** window size for a screenshot */
  size?: { width: number; height: number };
}

async function runChromium(args: string[], opts: ChromiumRun): Promise<string> {
  const bin = chromiumPath();
  if (!bin) throw new Error('headless Chromium is not installed: apt-get install chromium (scripts/bootstrap.sh installs it)');
  const profile = await mkdtemp(path.join(os.tmpdir(), 'nodemesh-chromium-'));
  const argv = [
    '--headless',
    '--disable-gpu',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-extensions',
    '--disable-background-networking',
    '--disable-dev-shm-usage',
    // root (the lab, CI containers) has no user namespace sandbox to drop into
    ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    `--user-data-dir=${profile}`,
    `--virtual-time-budget=${opts.budgetMs ?? 5_000}`,
    ...args,
  ];
  try {
    return await new Promise<string>((resolve, reject) => {
      const p = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      p.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
      const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      p.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      p.once('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else reject(new Error(`chromium ${args.join(' ')}: ${signal ? `killed (${signal}) after ${opts.timeoutMs ?? 60_000} ms` : `exit ${code}`}: ${err.trim()}`));
      });
    });
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The page's DOM, serialised after its scripts had `budgetMs` of virtual time. */
export function dumpDom(url: string, opts: ChromiumRun = {}): Promise<string> {
  return runChromium(['--dump-dom', url], opts);
}

/** Writes a PNG of the page to `file`. */
export async function screenshot(url: string, file: string, opts: ChromiumRun = {}): Promise<void> {
  const { width, height } = opts.size ?? { width: 1280, height: 900 };
  await runChromium([`--screenshot=${path.resolve(file)}`, `--window-size=${width},${height}`, '--hide-scrollbars', url], opts);
}
