// A hostile user and a failing control plane, in the lab (issue 8, findings 4, 6 and 7):
// - "any pod can read its node's admin port: /debug/state … and a live /debug/tap …;
//   meshed pods also reach the control plane's 15012/15014 through the passthrough": pods,
//   meshed or not, get nothing of 15020 and never reach the mesh's own ports through the
//   node proxy; the node itself, and the CLI from the lab's host, still read everything;
// - "one 28 MB file of 200,000 documents took the control plane from 89 MB to 2.4 GB …":
//   such a file is refused with a clear error, the control plane's memory stays put, the
//   agents stay connected and `nodemesh config status` works;
// - "a frozen control plane (SIGSTOP) was noticed by agents only after 35.6 s" and "control
//   plane stopped 30 s under traffic: zero failed requests": a client every 20 ms per loop,
//   on the same node and across nodes, loses nothing while the control plane is stopped;
//   both agents notice within 10 s and resume without re-applying anything.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { packagePath } from '../../common/paths.js';
import { DEFAULT_CLI } from '../../deploy/lab/lab-commands.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged, run } from '../helpers/privileged.js';
import { idleFor } from '../helpers/idle.js';
import { eventually } from '../helpers/eventually.js';

const FIXTURE = packagePath('test', 'fixtures', 'hostile');
const LAB = 'ra-hostile';
const LOOPS = ['near-keepalive', 'near-fresh', 'far-keepalive', 'far-fresh'] as const;
/** far below the loops' 50 requests/s each, so a loaded machine still passes */
const MIN_REQUESTS_PER_S = 10;

interface LoopStats {
  started: boolean;
  ok: number;
  failed: number;
}
interface ClientStats {
  loops: Record<string, LoopStats>;
  failures: { at: string; loop: string; error: string; ms: number }[];
}

/** Waits for `check` (polled every `everyMs`: each poll may scrape or exec in the lab). */
function until<T>(what: string, timeoutMs: number, check: () => Promise<T | false | undefined>, everyMs = 200): Promise<T> {
  return eventually(check, timeoutMs, what, everyMs);
}

if (canRunPrivileged('hostile pods and a failing control plane in the lab')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB }, async () => {
    await until('the client loops to get going', 30_000, async () => {
      const s = await clientStats();
      return LOOPS.every((l) => s.loops[l]?.started) && s;
    });
  });

  async function clientStats(): Promise<ClientStats> {
    return JSON.parse(await lab.output('shop/client', ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:9000/'])) as ClientStats;
  }

  /** curl from a pod or node: exit code, HTTP status ('000' when none) and body. */
  async function curl(target: string, url: string, extra: string[] = []): Promise<{ code: number; status: string; body: string }> {
    const r = await lab.exec(target, ['curl', '-sS', '--max-time', '5', '-o', '-', '-w', '\n%{http_code}', ...extra, url]);
    const i = r.stdout.lastIndexOf('\n');
    return { code: r.code, status: r.stdout.slice(i + 1).trim() || '000', body: r.stdout.slice(0, Math.max(0, i)) };
  }

  async function metric(node: string, name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumMetric(await scrape(lab.node(node).agentAdmin), name, labels);
  }

  const controlPid = () => lab.state.processes.find((p) => p.role === 'control')!.pid;

  async function rssBytes(pid: number): Promise<number> {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return Number(m![1]) * 1024;
  }

  function assertNoFailures(t: ExecutionContext, s0: ClientStats, s1: ClientStats, seconds: number): void {
    t.deepEqual(s1.failures.filter((f) => !s0.failures.some((g) => g.at === f.at && g.loop === f.loop)), [], 'failed requests');
    for (const loop of LOOPS) {
      t.is(s1.loops[loop]!.failed - s0.loops[loop]!.failed, 0, `${loop}: failed requests`);
      const ok = s1.loops[loop]!.ok - s0.loops[loop]!.ok;
      t.true(ok >= seconds * MIN_REQUESTS_PER_S, `${loop}: ${ok} good answers in ${seconds.toFixed(0)} s`);
    }
  }

  test.serial('a pod reads nothing of its node\'s admin port: unmeshed it is refused (401), meshed the node proxy never carries it there', async (t) => {
    const nodeA = lab.node('node-a');
    const admin = `http://${nodeA.ip}:15020`;
    for (const p of ['/debug/state', '/debug/tap', '/metrics', '/healthz/ready']) {
      const r = await curl('plain/prober', `${admin}${p}`);
      t.is(r.status, '401', `unmeshed pod, ${p}: ${r.body}`);
      t.notRegex(r.body, /netns|enrolled/);
    }
    // the other node's admin port too: a pod is never the node
    t.is((await curl('plain/prober', `http://${lab.node('node-b').ip}:15020/debug/state`)).status, '401');

    // a meshed pod to its node's proxy address: the datapath never redirects that address (it
    // would loop), so the pod arrives from its own address and the admin port refuses it
    for (const p of ['/debug/state', '/debug/tap']) t.is((await curl('shop/client', `${admin}${p}`)).status, '401', `meshed pod, ${p}`);
    // to the node's other addresses, or "this host": redirected, and the node proxy refuses to
    // carry it there (it would arrive from the node's own address)
    const before = await metric('node-a', 'nodemesh_agent_proxy_errors_total', { reason: 'mesh_own_port' });
    for (const url of [`http://${nodeA.podBridgeIp}:15020/debug/state`, `http://${nodeA.podBridgeIp}:15020/debug/tap`, 'http://0.0.0.0:15020/debug/state']) {
      const r = await curl('shop/client', url);
      t.is(r.status, '000', `meshed pod, ${url}: refused (curl exit ${r.code})`);
    }
    t.is((await metric('node-a', 'nodemesh_agent_proxy_errors_total', { reason: 'mesh_own_port' })) - before, 3, 'each refused by the passthrough guard, counted');
  });

  test.serial('a meshed pod cannot reach the mesh\'s own ports through the node proxy: the agents\' 15001/15006/15008/15020, the control plane\'s 15012/15014', async (t) => {
    const control = lab.state.controlAddress!.grpc.split(':')[0]!;
    const targets = [
      ...[15001, 15006, 15008, 15020].map((p) => `${lab.node('node-a').podBridgeIp}:${p}`),
      ...[15001, 15006, 15008, 15020].map((p) => `${lab.node('node-b').ip}:${p}`),
      `${control}:15012`,
      `${control}:15014`,
    ];
    const before = await metric('node-a', 'nodemesh_agent_proxy_errors_total', { reason: 'mesh_own_port' });
    for (const hp of targets) {
      const r = await curl('shop/client', `http://${hp}/healthz/ready`, ['-k']);
      t.is(r.status, '000', `${hp}: nothing answers (curl exit ${r.code})`);
    }
    t.is((await metric('node-a', 'nodemesh_agent_proxy_errors_total', { reason: 'mesh_own_port' })) - before, targets.length, 'each refused and counted');
    // the passthrough itself still works: a pod's address, straight
    const far = await curl('shop/client', `http://${lab.pod('far-1').ip}:8080/direct`);
    t.is(far.status, '200', far.body);
  });

  test.serial('the node itself and the CLI on the lab\'s host still read everything', async (t) => {
    const nodeA = lab.node('node-a');
    for (const url of [`http://${nodeA.ip}:15020/debug/state`, 'http://127.0.0.1:15020/debug/state']) {
      const r = await curl('node/node-a', url);
      t.is(r.status, '200', url);
      t.regex(r.body, /"enrolled"/);
    }
    const status = await run(process.execPath, [DEFAULT_CLI, 'status', '--name', LAB]);
    t.is(status.code, 0, status.stdout + status.stderr);
    // the row the host's CLI read from node-a's agent: ready, its snapshot version, its pods
    t.regex(status.stdout, /^node-a\s+\S+:15020\s+yes\s+v\d+\s+\d+\s+\d+\s/m);
    // `nodemesh tap` from the host sees the client's connections
    const tap = spawn(process.execPath, [DEFAULT_CLI, 'tap', '--name', LAB, '--node', 'node-a'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    tap.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      await until('tap lines', 30_000, async () => /shop\/client .* -> /.test(out));
    } finally {
      tap.kill('SIGTERM');
    }
    t.regex(out, / (open|close) shop\/client /);
  });

  test.serial('a file of 200,000 documents is refused with a clear error; the control plane\'s memory stays put, agents stay connected, config status works', async (t) => {
    const pid = controlPid();
    const rss0 = await rssBytes(pid);
    const s0 = await clientStats();
    const started = Date.now();
    const file = path.join(lab.state.configDir, 'flood.yaml');
    t.teardown(() => rm(file, { force: true }));
    const f = await open(file, 'w');
    for (let i = 0; i < 200_000; i += 10_000) {
      let chunk = '';
      for (let j = i; j < i + 10_000; j++) chunk += `---\napiVersion: v1\nkind: Pod\nmetadata: {name: flood-${j}, namespace: plain}\nspec: {nodeName: node-a, containers: [{name: c}]}\n`;
      await f.write(chunk);
    }
    await f.close();
    const shown = await until('the refusal in config status', 20_000, async () => {
      const r = await run(process.execPath, [DEFAULT_CLI, 'config', 'status', '--name', LAB]);
      return /NM_ERR_CONFIG_LIMIT/.test(r.stdout) && r;
    });
    t.is(shown.code, 1, 'exit 1: a file error');
    t.regex(shown.stdout, /flood\.yaml: the file is \d+\.\d MiB, over the limit of 4\.0 MiB per file \(--max-file-size\); it was not read, nothing of it is applied/);
    const grown = (await rssBytes(pid)) - rss0;
    t.true(grown < 100 * 1024 * 1024, `the control plane grew ${(grown / 1e6).toFixed(0)} MB`);
    for (const n of ['node-a', 'node-b']) t.is(await metric(n, 'nodemesh_agent_control_plane_connected'), 1, `${n} stays connected`);
    const ready = await fetch(`http://${lab.state.controlAddress!.admin}/healthz/ready`, { signal: AbortSignal.timeout(5_000) });
    t.is(ready.status, 200);
    await idleFor(1_000, 'traffic carries on for a second after the flood');
    assertNoFailures(t, s0, await clientStats(), (Date.now() - started) / 1000 - 1);
  });

  test.serial('control plane stopped 30 s under steady traffic on the same node and across nodes: zero failed requests; agents notice within 10 s and resume', async (t) => {
    const pid = controlPid();
    const versions0 = await Promise.all(['node-a', 'node-b'].map((n) => metric(n, 'nodemesh_agent_snapshot_version')));
    const applied0 = await Promise.all(['node-a', 'node-b'].map((n) => metric(n, 'nodemesh_agent_enrolled_pods')));
    const s0 = await clientStats();
    const stoppedAt = Date.now();
    process.kill(pid, 'SIGSTOP');
    let continued = false;
    const resume = () => {
      if (!continued) process.kill(pid, 'SIGCONT');
      continued = true;
    };
    t.teardown(resume);
    const noticed: Record<string, number> = {};
    await until('both agents to notice the frozen control plane', 20_000, async () => {
      for (const n of ['node-a', 'node-b']) {
        if (noticed[n] === undefined && (await metric(n, 'nodemesh_agent_control_plane_connected')) === 0) noticed[n] = Date.now() - stoppedAt;
      }
      return Object.keys(noticed).length === 2;
    }, 100);
    for (const [n, ms] of Object.entries(noticed)) t.true(ms <= 10_500, `${n} noticed after ${(ms / 1000).toFixed(1)} s`);
    await idleFor(Math.max(0, 30_000 - (Date.now() - stoppedAt)), 'the control plane stays frozen for 30 s');
    resume();
    const frozenS = (Date.now() - stoppedAt) / 1000;
    await until('both agents to reconnect', 30_000, async () => (await Promise.all(['node-a', 'node-b'].map((n) => metric(n, 'nodemesh_agent_control_plane_connected')))).every((v) => v === 1));
    const s1 = await clientStats();
    assertNoFailures(t, s0, s1, frozenS);
    t.deepEqual(await Promise.all(['node-a', 'node-b'].map((n) => metric(n, 'nodemesh_agent_snapshot_version'))), versions0, 'the same snapshot in force: nothing re-applied');
    t.deepEqual(await Promise.all(['node-a', 'node-b'].map((n) => metric(n, 'nodemesh_agent_enrolled_pods'))), applied0);
  });
}
