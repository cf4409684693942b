// The command line as a user types it, the real binary as a child process: `--help` on every
// command of the table (the test walks it), suggestions for a mistyped flag or command,
// `version`, and `status` / `check` against a control plane given by address (no lab).
import test from 'ava';
import net from 'node:net';
import { COMMANDS } from '../../cli/commands.js';
import { configDir, controlPlane } from '../helpers/control-plane.js';
import { nodemesh } from '../helpers/cli.js';

for (const c of COMMANDS) {
  const words = c.words.join(' ');
  test(`nodemesh ${words} --help exits 0 with usage, every flag and an example`, async (t) => {
    const r = await nodemesh([...c.words, '--help']);
    t.is(r.code, 0, r.stderr);
    t.true(r.stdout.startsWith(`nodemesh ${words} — `), r.stdout);
    t.regex(r.stdout, new RegExp(`^usage: nodemesh ${words}`, 'm'));
    for (const f of c.flags) t.true(r.stdout.includes(`--${f.name}`), `--${f.name} in the help of ${words}`);
    t.regex(r.stdout, /^example:\n {2}\S/m);
  });
}

test('no command lists a flag twice (long or short name)', (t) => {
  for (const c of COMMANDS) {
    const seen = new Set<string>();
    for (const f of c.flags) {
      for (const n of [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]) {
        t.false(seen.has(n), `${n} twice in nodemesh ${c.words.join(' ')}`);
        seen.add(n);
      }
    }
  }
});

test('-h works as --help, also after other flags; `nodemesh help lab up` too', async (t) => {
  const a = await nodemesh(['lab', 'up', '-f', 'x', '-h']);
  t.is(a.code, 0);
  t.regex(a.stdout, /^usage: nodemesh lab up/m);
  const b = await nodemesh(['help', 'lab', 'up']);
  t.is(b.stdout, a.stdout);
  const top = await nodemesh(['--help']);
  t.is(top.code, 0);
  for (const c of COMMANDS) t.true(top.stdout.includes(`  ${c.words.join(' ')}`), c.words.join(' '));
});

test('an unknown flag or command exits 2 and suggests the nearest', async (t) => {
  const flag = await nodemesh(['status', '--contrl', '127.0.0.1:1']);
  t.is(flag.code, 2);
  t.regex(flag.stderr, /status: unknown flag --contrl; did you mean --control\?/);
  const delegated = await nodemesh(['control', '--confg-dir', '/tmp']);
  t.is(delegated.code, 2);
  t.regex(delegated.stderr, /did you mean --config-dir\?/);
  const cmd = await nodemesh(['stauts']);
  t.is(cmd.code, 2);
  t.regex(cmd.stderr, /unknown command "stauts"; did you mean "status"\?/);
  const format = await nodemesh(['version', '-o', 'xml']);
  t.is(format.code, 2);
  t.regex(format.stderr, /-o xml: expected one of table, wide, json, yaml/);
});

test('control --remote-cluster-timeout takes a duration, and names the flag when it is not one', async (t) => {
  const bad = await nodemesh(['control', '--insecure', '--config-dir', '/tmp', '--remote-cluster-timeout', '3x']);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /control: --remote-cluster-timeout "3x": expected a duration such as 30s, 2m or 0 \(no wait\)/);
});

test('version and --version name the git revision; -o json has version and revision', async (t) => {
  const a = await nodemesh(['--version']);
  t.is(a.code, 0);
  t.regex(a.stdout, /^nodemesh \S+ \(git [0-9a-f]{12}(-dirty)?, node v\d+/);
  const j = JSON.parse((await nodemesh(['version', '-o', 'json'])).stdout) as { version: string; revision: string };
  t.regex(j.revision, /^[0-9a-f]{12}/);
  t.truthy(j.version);
});

/** A port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('status against a control plane by address: -o json has control and agents (lag, readiness); an unreachable agent makes it exit 1', async (t) => {
  const cp = await controlPlane(t, { configDir: await configDir(t, {}) });
  const agent = `127.0.0.1:${await deadPort()}`;
  const r = await nodemesh(['status', '--control', `127.0.0.1:${cp.adminPort}`, '--agent', agent, '-o', 'json']);
  t.is(r.code, 1);
  const s = JSON.parse(r.stdout) as { control: { reachable: boolean; ready: boolean; snapshotVersion: number }; agents: { admin: string; ready: boolean; reachable: boolean; lag: number | null }[] };
  t.like(s.control, { reachable: true, ready: true, snapshotVersion: 1 });
  t.like(s.agents[0], { admin: agent, ready: false, reachable: false, lag: null });
  const table = await nodemesh(['status', '--control', `127.0.0.1:${cp.adminPort}`, '--agent', agent]);
  t.regex(table.stdout, /^control plane 127\.0\.0\.1:\d+: ready, snapshot v1, config 0 accepted/m);
  t.regex(table.stdout, /^NODE\s+ADMIN\s+READY\s+SNAPSHOT\s+LAG\s+PODS\s+CERT EXPIRY\s+MEMORY$/m);
});

test('check: the control plane down is ✖ with what to do; up with no agent, "agents found" is ✖; exit 1', async (t) => {
  const down = await nodemesh(['check', '--control', `127.0.0.1:${await deadPort()}`]);
  t.is(down.code, 1);
  t.regex(down.stdout, /^✖ control plane reachable \(127\.0\.0\.1:\d+\)\n {4}ECONNREFUSED: is it running\?/m);
  const cp = await controlPlane(t, { configDir: await configDir(t, {}) });
  const up = await nodemesh(['check', '--control', `127.0.0.1:${cp.adminPort}`, '-o', 'json']);
  t.is(up.code, 1);
  const j = JSON.parse(up.stdout) as { ok: boolean; checks: { section: string; name: string; ok: boolean; detail: string }[] };
  t.false(j.ok);
  t.like(j.checks.find((c) => c.name.startsWith('control plane reachable')), { ok: true });
  t.like(j.checks.find((c) => c.name === 'configuration free of errors'), { ok: true });
  t.like(j.checks.find((c) => c.name === 'agents found'), { ok: false });
  t.regex(j.checks.find((c) => c.name === 'agents found')!.detail, /start them/);
});
