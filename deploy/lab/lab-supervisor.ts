// The lab's stand-in for the kubelet running the agent DaemonSet on a node: runs the agent
// command line, and
//   - restarts it when it exits, as `restartPolicy: Always` does: at once the first time,
//     then with a back-off that doubles from 1 s to 10 s while it keeps crashing (kubelet's
//     goes from 10 s to 5 min; a lab wants its restarts sooner), reset after 10 s of running;
//   - on SIGUSR2 starts a second agent with the same command line while the first runs, as a
//     DaemonSet rolling update with maxSurge does: the new one takes the listeners over
//     (agent/lifecycle/handoff.ts) and the old one drains and exits on its own;
//   - on SIGTERM/SIGINT stops restarting, passes the signal on and exits when its agents
//     have (the node is drained, or the lab goes down).
// Every start and exit is appended to the --starts file as a JSON line ({event, pid, at,
// reason | code, signal}), which the lab reads to tell the tests what happened when.
//
//   node lab-supervisor.js --starts FILE -- ARGV…
//
// The agents stay in the supervisor's process group, cgroup and netns: killing the group
// (what `lab down` and a test simulating a crash of the whole pod do) ends them all.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';

const sep = process.argv.indexOf('--');
const startsAt = process.argv.indexOf('--starts');
if (sep < 0 || startsAt < 0 || startsAt > sep || sep === process.argv.length - 1) {
  process.stderr.write('usage: lab-supervisor --starts FILE -- ARGV…\n');
  process.exit(2);
}
const startsFile = process.argv[startsAt + 1]!;
const argv = process.argv.slice(sep + 1);

const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 10_000;
const STABLE_MS = 10_000;

let current: ChildProcess | undefined;
const running = new Set<ChildProcess>();
let stopping = false;
let backoff = 0;
let restartTimer: NodeJS.Timeout | undefined;

function record(event: Record<string, unknown>): void {
  appendFileSync(startsFile, JSON.stringify({ ...event, at: Date.now() }) + '\n');
}

function start(reason: 'initial' | 'restart' | 'upgrade'): void {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' });
  const startedAt = Date.now();
  running.add(child);
  current = child;
  child.once('spawn', () => record({ event: 'start', pid: child.pid, reason }));
  child.once('error', (err) => process.stderr.write(`lab-supervisor: cannot start ${argv.join(' ')}: ${err.message}\n`));
  child.once('exit', (code, signal) => {
    running.delete(child);
    record({ event: 'exit', pid: child.pid, code, signal });
    if (stopping) {
      if (running.size === 0) process.exit(0);
      return;
    }
    if (child !== current) return; // an agent that handed over to its successor
    if (Date.now() - startedAt > STABLE_MS) backoff = 0;
    const delay = backoff; // 0 after a stable run: restarted at once
    backoff = backoff === 0 ? BACKOFF_FIRST_MS : Math.min(backoff * 2, BACKOFF_MAX_MS);
    restartTimer = setTimeout(() => start('restart'), delay);
  });
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    stopping = true;
    clearTimeout(restartTimer);
    for (const c of running) c.kill(sig);
    if (running.size === 0) process.exit(0);
  });
}
process.on('SIGUSR2', () => {
  if (!stopping) start('upgrade');
});

start('initial');
