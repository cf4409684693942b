// The agent's lifecycle in the lab (test/fixtures/lifecycle): what a node's traffic sees
// while its agent stops, crashes, restarts and is upgraded, the agent supervised as its
// DaemonSet would be (deploy/lab/lab-agents.ts):
//   - a stop (SIGTERM: a node drain) keeps STRICT enforced: the capture outlives the agent;
//   - with no agent, a namespace with nodemesh.io/fail-mode: open is reached (and reaches
//     out) directly, a closed one is refused, and STRICT stays closed even there; after a
//     crash the same once the heartbeat is stale;
//   - kill -9 under steady traffic (a new connection every 20 ms to a Service on the same
//     node and one on the other): failures counted and bounded, traffic back soon after the
//     new process starts;
//   - an upgrade (a new agent started beside the running one) under the same traffic fails no
//     request; a connection open across it keeps working for the drain period;
//   - `lab down` (an uninstall) leaves nothing of the datapath the agents left in place.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import readline from 'node:readline';
import { labAgentPid, labAgentStarts, labDown, labExecCommand, labKillAgent, labStartAgent, labStopAgent, labUpgradeAgent } from '../../deploy/lab/lab.js';
import { readLabState } from '../../deploy/lab/lab-state.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged, run } from '../helpers/privileged.js';
import { eventually } from '../helpers/eventually.js';
import { fetchWithin } from '../helpers/fetch-within.js';
import { packagePath } from '../../common/paths.js';

const FIXTURE = packagePath('test', 'fixtures', 'lifecycle');
const STEADY = packagePath('test', 'fixtures', 'lifecycle', 'steady-client.js');
const LAB = 'rl-life';
const DRAIN_S = 4;
/**
 * The restart target is 1 s from the new process's start to traffic served again. A lab
 * test must not cry wolf on a loaded 2-core machine, where starting Node alone takes a
 * second: the bound scales with the load per core (never below 1.5 s); the measured value
 * is logged.
 */
// A failure bound that holds while other lab files run beside this one (the suite runs them in
// parallel on 2 cores): readiness and the first answer after a restart are logged with the
// load; the 1 s target of a quiet machine is a measurement (a quiet run of this file alone
// shows ~0.9 s ready, ~1.1 s to the first answer across nodes), not a timed assertion.
const RESTART_BUDGET_MS = Math.round(1_000 * Math.max(3, (2 * os.loadavg()[0]!) / os.cpus().length));

interface Curl {
  code: number;
  stderr: string;
  body: { pod: string; remote: string } | undefined;
  /** the client's own end of the connection (curl's local ip:port) */
  local: string;
}

interface Result {
  url: string;
  start: number;
  end: number;
  ok: boolean;
  error?: string;
  phase?: string;
}

if (canRunPrivileged('agent lifecycle')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB, env: { NODEMESH_DRAIN_PERIOD: `${DRAIN_S}s` } });
  const ip = (pod: string) => lab.pod(pod).ip;
  const nodeA = () => lab.node('node-a');

  async function curl(from: string, to: string, maxTime = 3): Promise<Curl> {
    const r = await lab.exec(from, ['curl', '-sS', '--max-time', String(maxTime), '-w', '\n%{local_ip}:%{local_port}', `http://${ip(to)}:8080/`]);
    const cut = r.stdout.lastIndexOf('\n');
    let body: Curl['body'];
    try {
      body = JSON.parse(r.stdout.slice(0, Math.max(cut, 0))) as Curl['body'];
    } catch {
      body = undefined;
    }
    return { code: r.code, stderr: r.stderr, body, local: r.stdout.slice(cut + 1).trim() };
  }
  const peer = (c: Curl) => c.body?.remote.replace(/^::ffff:/, '').replace(/:\d+$/, '');
  const inNodeA = (cmd: string[]) => run('ip', ['netns', 'exec', nodeA().netns, ...cmd]);

  /** Dropped in the kernel (no proxy took the SYN): curl gives up with a timeout. */
  async function assertDropped(t: ExecutionContext, from: string, to: string) {
    const r = await curl(from, to, 2);
    t.is(r.code, 28, `${from} -> ${to}: expected the SYN dropped (curl timeout), got ${r.code} ${r.stderr} ${JSON.stringify(r.body)}`);
  }
  /** Served by the pod itself, the client's very socket as the peer: the proxy was bypassed. */
  async function assertDirect(t: ExecutionContext, from: string, to: string) {
    const r = await curl(from, to);
    t.is(r.code, 0, `${from} -> ${to}: ${r.stderr}`);
    t.is(r.body?.pod, to);
    t.is(r.body?.remote.replace(/^::ffff:/, ''), r.local, `${to} saw ${r.body?.remote}: not the client itself`);
  }
  /**
   * Captured: the pod saw its client's address (the proxy delivers from it) on another
   * socket than the client's own: node-a's proxy's, bound to a port of its own choosing (the
   * kernel picks it among ~28k: it equals the client's one time in that many).
   */
  async function assertCaptured(t: ExecutionContext, from: string, to: string) {
    const r = await curl(from, to);
    t.is(r.code, 0, `${from} -> ${to}: ${r.stderr}`);
    t.is(peer(r), ip(from.split('/')[1]!), `${to} saw ${r.body?.remote}: not its client's address`);
    t.not(r.body?.remote.replace(/^::ffff:/, ''), r.local, `${to} saw the client's own socket: not node-a's proxy`);
  }

  /** A steady client in shop/client: a new connection every 20 ms to each URL. */
  function steady(urls: string[], timeoutMs = 5_000) {
    const results: Result[] = [];
    let stopped: Promise<void> | undefined;
    const started = (async () => {
      const cmd = await labExecCommand({ name: LAB, target: 'shop/client', argv: ['node', STEADY, ...urls] });
      const c = spawn(cmd.argv[0]!, cmd.argv.slice(1), { env: { ...cmd.env, TIMEOUT_MS: String(timeoutMs), INTERVAL_MS: '20' }, stdio: ['ignore', 'pipe', 'pipe'] });
      readline.createInterface({ input: c.stdout! }).on('line', (l) => results.push(JSON.parse(l) as Result));
      c.stderr!.on('data', () => {});
      stopped = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      return c;
    })();
    return {
      results,
      /** until `n` more requests to every URL succeeded */
      async ok(n: number, what: string) {
        const base = Object.fromEntries(urls.map((u) => [u, results.filter((r) => r.url === u && r.ok).length]));
        await eventually(() => urls.every((u) => results.filter((r) => r.url === u && r.ok).length >= base[u]! + n), 60_000, what);
      },
      async stop() {
        (await started).kill('SIGTERM');
        await stopped;
      },
    };
  }
  const URLS = ['http://web-local.shop/', 'http://web-remote.shop/'];

  test.serial('after SIGTERM of an agent (a node drain) a plaintext client cannot reach its STRICT pod: the capture outlives the process', async (t) => {
    await labStopAgent(LAB, 'node-a');
    t.is(await labAgentPid(LAB, 'node-a'), undefined, 'no agent runs on node-a');
    t.regex((await inNodeA(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout, /nm_inbound/, 'the tc filter outlives the agent');
    t.regex((await inNodeA(['ip', 'rule', 'show'])).stdout, /fwmark 0x111\/0xfff lookup 15006/);
    t.true(existsSync(nodeA().pinDir));
    await assertDropped(t, 'outside/plain-b', 'strict-a'); // from the other node
    await assertDropped(t, 'outside/plain-a', 'strict-a'); // from the same bridge
    await assertDropped(t, 'outside/plain-b', 'web-a'); // PERMISSIVE, but its namespace fails closed
    // the meshed pods of node-a cannot get out around their proxy either
    const out = await lab.exec('shop/client', ['curl', '-sS', '--max-time', '2', `http://${ip('plain-b')}:8080/`]);
    t.is(out.code, 7, `expected the connect refused: ${out.stderr}`);

    // an agent again: it adopts the datapath and captures as before
    await labStartAgent(LAB, 'node-a');
    await assertCaptured(t, 'outside/plain-b', 'web-a');
    const strict = await curl('outside/plain-b', 'strict-a');
    t.true(strict.code === 56 || strict.code === 7, `STRICT refuses plaintext with a reset: ${strict.code} ${strict.stderr}`);
  });

  test.serial('with the agent stopped, a fail-open namespace is reached and reaches out directly; a closed one is refused; STRICT in an open namespace stays closed', async (t) => {
    // a restarted agent is ready as soon as it serves (the pinned datapath captures meanwhile);
    // its own view of the inbound capture comes once it loaded the inbound programs after that
    const failOpen = async () => ((await (await fetch(`http://${nodeA().agentAdmin}/debug/state`)).json()) as { inboundCapture: { failOpen: string[] } }).inboundCapture.failOpen;
    const want = [ip('server-a'), ip('client-open-a')].sort();
    await eventually(async () => JSON.stringify(await failOpen()) === JSON.stringify(want), 20_000, 'the agent reporting its inbound capture');
    t.deepEqual(await failOpen(), want, 'the agent marked exactly the fail-open pods');
    await labStopAgent(LAB, 'node-a');
    await assertDirect(t, 'outside/plain-b', 'server-a');
    await assertDirect(t, 'outside/plain-a', 'server-a');
    await assertDropped(t, 'outside/plain-b', 'strict-open-a');
    await assertDropped(t, 'outside/plain-b', 'web-a');
    // outbound: the open namespace's client goes where it dialled, the closed one's is refused
    await assertDirect(t, 'open/client-open-a', 'plain-b');
    const closed = await lab.exec('shop/client', ['curl', '-sS', '--max-time', '2', `http://${ip('plain-b')}:8080/`]);
    t.is(closed.code, 7, closed.stderr);
    await labStartAgent(LAB, 'node-a');
    await assertCaptured(t, 'outside/plain-b', 'server-a');
  });

  test.serial('after a crash that nothing restarts, fail-open pods bypass the proxy once its heartbeat is stale; closed ones stay refused', async (t) => {
    // the whole pod (supervisor and agent), as when the node kills it: nothing restarts it
    const sup = (await readLabState(LAB))!.processes.filter((p) => p.role === 'agent' && p.name === 'node-a').at(-1)!;
    process.kill(-sup.pid, 'SIGKILL');
    await eventually(async () => (await labAgentPid(LAB, 'node-a')) === undefined || !alive(sup.pid), 10_000, 'the agent gone');
    const killedAt = Date.now();
    // fail-open pods are reached directly once the heartbeat is older than the liveness timeout (2 s)
    const direct = await eventually(async () => {
      const r = await curl('outside/plain-b', 'server-a', 1);
      return r.code === 0 ? r : undefined;
    }, 15_000, 'server-a reached directly');
    t.is(peer(direct), ip('plain-b'));
    t.log(`fail-open bypass ${Date.now() - killedAt} ms after the crash`);
    await assertDropped(t, 'outside/plain-b', 'web-a');
    await assertDropped(t, 'outside/plain-b', 'strict-open-a');
    await labStartAgent(LAB, 'node-a');
    await assertCaptured(t, 'outside/plain-b', 'server-a');
  });

  test.serial('kill -9 of an agent under steady traffic: its supervisor restarts it, failures are counted and bounded, traffic is back soon after the new process starts', async (t) => {
    const load = steady(URLS);
    t.teardown(() => load.stop());
    await load.ok(25, 'steady traffic before the kill');
    const killedAt = Date.now();
    const killed = await labKillAgent(LAB, 'node-a');
    const readyAt = eventually(async () => ((await ready(nodeA().agentAdmin)) ? Date.now() : undefined), 60_000, 'ready again');
    const restart = await eventually(async () => (await labAgentStarts(LAB, 'node-a')).find((e) => e.event === 'start' && e.reason === 'restart' && e.at >= killedAt - 100), 20_000, 'the restart');
    t.not(restart.pid, killed);
    const readyMs = (await readyAt) - restart.at;
    t.log(`ready ${readyMs} ms after the new agent process started`);
    t.true(readyMs <= RESTART_BUDGET_MS, `readiness ${readyMs} ms after the new process started`);
    await load.ok(25, 'traffic after the restart');
    await load.stop();

    const failed = load.results.filter((r) => !r.ok);
    t.log(`failed: ${failed.length} of ${load.results.length}: ${JSON.stringify(Object.fromEntries([...new Set(failed.map((f) => `${f.error}/${f.phase}`))].map((k) => [k, failed.filter((f) => `${f.error}/${f.phase}` === k).length])))}`);
    for (const url of URLS) {
      const back = load.results.filter((r) => r.url === url && r.ok && r.start >= restart.at).sort((a, b) => a.end - b.end)[0];
      t.truthy(back, `${url}: served after the restart`);
      const ms = back!.end - restart.at;
      t.log(`${url}: first answer ${ms} ms after the new agent process started (bound ${RESTART_BUDGET_MS} ms at load ${os.loadavg()[0]!.toFixed(1)})`);
      t.true(ms <= RESTART_BUDGET_MS, `${url}: ${ms} ms from the new process's start to traffic served`);
      // what failed was on its way in the outage: nothing before the kill, nothing once it was back
      const mine = failed.filter((f) => f.url === url);
      t.true(mine.every((f) => f.end >= killedAt - 50 && f.start <= back!.end), `${url}: a failure outside the outage: ${JSON.stringify(mine.find((f) => f.end < killedAt - 50 || f.start > back!.end))}`);
      // bounded by what overlapped it: the requests started in the outage (one every 20 ms) and
      // those the killed agent held (on a loaded machine an answer takes long, so more are held)
      const outage = back!.end - killedAt;
      const held = load.results.filter((r) => r.url === url && r.start < killedAt && r.end >= killedAt).length;
      t.true(mine.length <= Math.ceil(outage / 20) + held + 5, `${url}: ${mine.length} failures for an outage of ${outage} ms (a request every 20 ms) with ${held} in flight at the kill`);
    }
  });

  test.serial('an upgrade under steady traffic fails no request; a connection open across it keeps working for the drain period, then is closed', async (t) => {
    // a long-lived connection through node-a's proxy (L4, to web-b on node-b), one request every 200 ms on it
    const cmd = await labExecCommand({ name: LAB, target: 'shop/client', argv: ['node', '-e', KEEPALIVE_CLIENT, `tcp-remote.shop`, '9000'] });
    const kc = spawn(cmd.argv[0]!, cmd.argv.slice(1), { env: cmd.env, stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => void kc.kill('SIGKILL'));
    const kept: Array<{ at: number; ok?: boolean; closed?: boolean }> = [];
    readline.createInterface({ input: kc.stdout! }).on('line', (l) => kept.push(JSON.parse(l) as (typeof kept)[number]));
    await eventually(() => kept.filter((k) => k.ok).length >= 3, 20_000, 'the long-lived connection answering');

    const load = steady(URLS);
    t.teardown(() => load.stop());
    await load.ok(25, 'steady traffic before the upgrade');
    const { oldPid, newPid } = await labUpgradeAgent(LAB, 'node-a');
    const tookOver = Date.now();
    t.not(newPid, oldPid);
    await load.ok(25, 'traffic after the upgrade');
    // the old agent drains for DRAIN_S, then closes what is left and exits
    const oldExit = await eventually(async () => (await labAgentStarts(LAB, 'node-a')).find((e) => e.event === 'exit' && e.pid === oldPid), (DRAIN_S + 20) * 1000, 'the old agent exiting');
    t.is(oldExit.code, 0);
    await load.stop();

    const failed = load.results.filter((r) => !r.ok);
    t.deepEqual(failed.filter((f) => f.phase === 'connect'), [], `connections refused during the upgrade (${load.results.length} sent)`);
    // (a same-node request timing out at any time, upgrade or not, is finding 2 of issue 8: the same-node pipe)
    t.deepEqual(failed, [], `requests failed during the upgrade (${load.results.length} sent)`);
    t.true(kept.some((k) => k.ok && k.at > tookOver + 500), 'the long-lived connection still answered after the new agent took over');
    const closed = await eventually(() => kept.find((k) => k.closed), 10_000, 'the long-lived connection closed');
    t.true(closed.at >= tookOver + (DRAIN_S - 1) * 1000, `closed ${closed.at - tookOver} ms after the takeover: before the drain period`);
    t.is(await labAgentPid(LAB, 'node-a'), newPid);
  });

  test.serial('lab down (an uninstall) removes the datapath the agents leave in place when they stop', async (t) => {
    const pins = lab.state.nodes.map((n) => n.pinDir);
    t.true(pins.every((p) => existsSync(p)));
    await labDown({ name: LAB });
    t.deepEqual(pins.filter((p) => existsSync(p)), []);
    const netns = (await run('ip', ['netns', 'list'])).stdout;
    t.false(netns.includes(`nm-${LAB}-`), 'node netns (their tc filters, rules and routes) gone');
    t.false(existsSync(`/run/nodemesh/labs/${LAB}`), 'the state dir (handoff sockets, last good state) gone');
  });
}

// One HTTP/1.1 keep-alive connection, a request every 200 ms; a line per answer and one when it closes.
const KEEPALIVE_CLIENT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const out = (o) => process.stdout.write(JSON.stringify({ at: Date.now(), ...o }) + '\\n');
const s = net.connect(Number(port), host);
let buf = '';
s.on('data', (d) => { buf += d; const n = (buf.match(/HTTP\\/1\\.1 200/g) || []).length; if (n) { for (let i = 0; i < n; i++) out({ ok: true }); buf = ''; } });
s.on('close', () => { out({ closed: true }); process.exit(0); });
s.on('error', () => {});
s.on('connect', () => setInterval(() => s.write('GET /kept HTTP/1.1\\r\\nhost: web\\r\\n\\r\\n'), 200));
`;

/** GET /healthz/ready answers 200. */
async function ready(admin: string): Promise<boolean> {
  try {
    return (await fetchWithin(`http://${admin}/healthz/ready`, 500)).status === 200;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
