// Proxy workers in the lab (test/fixtures/workers): node-a's agent runs with `--workers 2`
// (NODEMESH_WORKERS), one agent per node still. Shown: both workers serve connections of the
// one listener, a snapshot change reaches both, /metrics sums them, a killed worker is
// replaced while the other keeps serving, a stop leaves no worker behind, and the agent and its
// workers run on the DaemonSet's allocator (jemalloc).
import test from 'ava';
import { readFile, rename, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { labAgentPid, labAgentStarts, labExecCommand, labStopAgent, labUpgradeAgent } from '../../deploy/lab/lab.js';
import { JEMALLOC } from '../../deploy/lab/lab-agents.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged } from '../helpers/privileged.js';
import { ourFindings, promtoolFindings } from '../helpers/promtool.js';
import { eventually } from '../helpers/eventually.js';
import { packagePath } from '../../common/paths.js';

const FIXTURE = packagePath('test', 'fixtures', 'workers');
const CLIENT = packagePath('test', 'fixtures', 'traffic', 'client.js');
const STEADY = packagePath('test', 'fixtures', 'lifecycle', 'steady-client.js');
const LAB = 'h15-workers';

interface WorkerDebug {
  pid: number;
  /** false while a (re)started worker has not yet begun to serve */
  listening: boolean;
  snapshotVersion: number;
  requests: number;
  hbone?: { inboundConnections?: number };
}
interface AgentDebug {
  pid: number;
  snapshotVersion: number;
  /** the workers' pids, by slot */
  workerPids: number[];
  /** each running worker's own answer */
  workers: WorkerDebug[];
  /** what the primary counts per worker to hand the next HBONE connection to the fewest */
  hboneHanded: { pid: number; connections: number }[];
}
interface Load {
  total: number;
  status: Record<string, number>;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

if (canRunPrivileged('proxy workers')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB, env: { NODEMESH_WORKERS: '2', NODEMESH_DRAIN_PERIOD: '2s' } });
  const admin = () => lab.node('node-a').agentAdmin;

  async function debugState(node = 'node-a'): Promise<{ agent: AgentDebug; workers: WorkerDebug[] }> {
    const d = (await (await fetch(`http://${lab.node(node).agentAdmin}/debug/state`)).json()) as AgentDebug;
    return { agent: d, workers: d.workers };
  }

  async function load(n: number, concurrency: number): Promise<Load> {
    return JSON.parse(await lab.output('shop/client', ['node', CLIENT, 'load', 'http://web.shop/', String(n), String(concurrency)])) as Load;
  }

  /** istio_requests_total of the client's requests to web, summed over its series, from node-a's /metrics. */
  async function requestsMetric(): Promise<number> {
    const text = await (await fetch(`http://${admin()}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('istio_requests_total{') && line.includes('reporter="source"') && line.includes('source_workload="client"')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  }

  let sent = 0;

  test.serial('one agent on node-a, two workers, and connections of the one listener served by both', async (t) => {
    const { agent } = await debugState();
    t.is(await labAgentPid(LAB, 'node-a'), agent.pid, 'the agent answering is the node\'s one agent');
    t.is(agent.workerPids.length, 2);
    t.true(agent.workerPids.every((p) => p > 0 && p !== agent.pid && alive(p)), `worker pids ${agent.workerPids.join(', ')}`);
    // many connections at once (16 keep-alive connections per run) until both workers served some
    const served = await eventually(
      async () => {
        const r = await load(200, 16);
        sent += r.total;
        t.deepEqual(r.status, { '200': r.total });
        const { workers } = await debugState();
        return workers.length === 2 && workers.every((w) => w.requests > 0) ? workers : undefined;
      },
      120_000,
      'both workers served requests',
    );
    t.log(`requests per worker: ${served.map((w) => `${w.pid}: ${w.requests}`).join(', ')}`);
  });

  test.serial("node-b's agent spreads the HBONE connections from node-a's workers over its own: it accepts them and hands each to the worker holding the fewest", async (t) => {
    // both of node-a's workers served (the test before): each holds its own HBONE connection
    // to node-b, and a shared accept queue put them on one worker half of the time
    const { workers } = await debugState('node-b');
    t.is(workers.length, 2);
    const held = workers.map((w) => w.hbone?.inboundConnections ?? 0);
    const total = held.reduce((a, b) => a + b, 0);
    t.true(total >= 2, `node-b's workers hold ${total} HBONE connections from node-a's two workers`);
    t.true(Math.max(...held) - Math.min(...held) <= 1, `HBONE connections per worker of node-b: ${held.join(', ')}`);
  });

  test.serial('the agent and its workers run on jemalloc, preloaded as the DaemonSet preloads it', async (t) => {
    // deploy/lab/lab-agents.ts AGENT_ENV; scripts/bootstrap.sh installs libjemalloc2
    const { agent } = await debugState();
    for (const pid of [agent.pid, ...agent.workerPids]) {
      const maps = await readFile(`/proc/${pid}/maps`, 'utf8');
      t.true(maps.includes(`/${JEMALLOC}`), `process ${pid} has no ${JEMALLOC} mapped`);
    }
  });

  test.serial('/metrics on 15020 sums every worker: istio_requests_total equals the requests made and the workers\' own counts, and promtool accepts it', async (t) => {
    const { workers } = await debugState();
    const own = workers.reduce((a, w) => a + w.requests, 0);
    const metric = await requestsMetric();
    t.is(metric, sent, `istio_requests_total ${metric}, requests made ${sent}`);
    t.is(metric, own, `the workers counted ${own}`);
    // the summed exposition is still one promtool accepts (test/helpers/promtool.ts: the tolerated findings)
    const text = await (await fetch(`http://${admin()}/metrics`)).text();
    t.deepEqual(ourFindings(await promtoolFindings(text)), []);
  });

  test.serial('/debug/tap shows the connections every worker accepts', async (t) => {
    const events: { event: string; sourceWorkload: string }[] = [];
    const req = http.get(`http://${admin()}/debug/tap`, (res) => {
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (d: string) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line.startsWith('{')) events.push(JSON.parse(line) as { event: string; sourceWorkload: string });
        }
      });
      res.on('error', () => {});
    });
    req.on('error', () => {});
    t.teardown(() => req.destroy());
    const opens = () => events.filter((e) => e.event === 'open' && e.sourceWorkload === 'shop/client').length;
    // the workers publish once the agent saw the tap (it looks twice a second)
    await eventually(
      async () => {
        sent += (await load(4, 4)).total;
        return opens() > 0 ? true : undefined;
      },
      30_000,
      'a first connection in the tap',
    );
    const before = opens();
    const r = await load(64, 16); // 16 new connections, spread over both workers
    sent += r.total;
    await eventually(() => opens() - before >= 16 || undefined, 30_000, 'all 16 connections in the tap');
    t.is(opens() - before, 16);
  });

  test.serial('a snapshot change reaches both workers: a fault abort applies to every request, whichever worker serves it', async (t) => {
    const before = (await debugState()).agent.snapshotVersion;
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
    - fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
      route: [{destination: {host: web}}]
`;
    const tmp = path.join(lab.state.configDir, '.abort.yaml.tmp');
    await writeFile(tmp, vs);
    await rename(tmp, path.join(lab.state.configDir, 'abort.yaml'));
    const { agent, workers } = await eventually(
      async () => {
        const d = await debugState();
        return d.agent.snapshotVersion > before && d.workers.length === 2 && d.workers.every((w) => w.snapshotVersion === d.agent.snapshotVersion) ? d : undefined;
      },
      30_000,
      'both workers hold the new snapshot',
    );
    t.log(`snapshot ${before} -> ${agent.snapshotVersion}`);
    const counts = new Map(workers.map((w) => [w.pid, w.requests]));
    await eventually(
      async () => {
        const r = await load(200, 16);
        sent += r.total;
        t.deepEqual(r.status, { '418': r.total }, 'every request aborted by the new route');
        const after = (await debugState()).workers;
        return after.length === 2 && after.every((w) => w.requests > counts.get(w.pid)!) ? true : undefined;
      },
      120_000,
      'both workers served requests under the new snapshot',
    );
    await writeFile(tmp, '');
    await rename(tmp, path.join(lab.state.configDir, 'abort.yaml'));
    await eventually(
      async () => {
        const r = await load(16, 4);
        sent += r.total;
        return r.status['200'] === 16 ? true : undefined;
      },
      30_000,
      'the fault gone again',
    );
  });

  test.serial('a killed worker is replaced while the other keeps serving', async (t) => {
    const { agent } = await debugState();
    const [victim, other] = agent.workerPids as [number, number];
    process.kill(victim, 'SIGKILL');
    // traffic goes on at once: the listener never closed, the other worker accepts
    const r = await load(100, 8);
    sent += r.total;
    t.deepEqual(r.status, { '200': 100 });
    const replaced = await eventually(
      async () => {
        const d = await debugState();
        // a restarted worker answers the debug question before it listens: wait until both serve
        const serving = d.workers.length === 2 && d.workers.every((w) => w.listening);
        return d.agent.workerPids.length === 2 && d.agent.workerPids.every((p) => p > 0) && !d.agent.workerPids.includes(victim) && serving ? d : undefined;
      },
      30_000,
      'the killed worker replaced and serving',
    );
    t.true(replaced.agent.workerPids.includes(other), 'the other worker was left alone');
    // node-b's sessions from the killed worker closed: node-b's primary, which counts what each
    // of its workers holds (to hand the next HBONE connection to the fewest), counts them out
    await eventually(
      async () => {
        const { agent: b, workers } = await debugState('node-b');
        const held = workers.map((w) => [w.pid, w.hbone?.inboundConnections ?? 0]);
        const counted = b.hboneHanded.map((h) => [h.pid, h.connections]);
        return JSON.stringify(held.sort()) === JSON.stringify(counted.sort()) && workers.length === 2 ? true : undefined;
      },
      30_000,
      "node-b's count of each worker's HBONE connections matching what each worker holds, after node-a's killed worker's closed",
    );
    t.false(alive(victim));
    const metrics = await (await fetch(`http://${admin()}/metrics`)).text();
    t.regex(metrics, /^nodemesh_agent_worker_restarts_total 1$/m);
    t.regex(metrics, /^nodemesh_agent_workers 2$/m);
    // the new worker holds the snapshot and serves too
    const fresh = replaced.workers.find((w) => !agent.workerPids.includes(w.pid))!;
    t.is(fresh.snapshotVersion, replaced.agent.snapshotVersion);
    await eventually(
      async () => {
        t.deepEqual((await load(200, 16)).status['200'], 200);
        const w = (await debugState()).workers.find((x) => x.pid === fresh.pid);
        return w && w.requests > 0 ? true : undefined;
      },
      120_000,
      'the new worker serves',
    );
  });

  test.serial('an upgrade (a new agent, with its own workers, takes the listeners over) fails no request, and the old workers exit with their agent', async (t) => {
    const { agent } = await debugState();
    const results: { ok: boolean; phase?: string; error?: string }[] = [];
    const cmd = await labExecCommand({ name: LAB, target: 'shop/client', argv: ['node', STEADY, 'http://web.shop/'] });
    const c = spawn(cmd.argv[0]!, cmd.argv.slice(1), { env: { ...cmd.env, TIMEOUT_MS: '5000', INTERVAL_MS: '20' }, stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    t.teardown(() => c.kill('SIGKILL'));
    readline.createInterface({ input: c.stdout! }).on('line', (l) => results.push(JSON.parse(l) as { ok: boolean }));
    const okCount = () => results.filter((r) => r.ok).length;
    await eventually(() => okCount() >= 25 || undefined, 60_000, 'steady traffic before the upgrade');
    const { oldPid, newPid } = await labUpgradeAgent(LAB, 'node-a');
    t.is(oldPid, agent.pid);
    const after = okCount();
    await eventually(() => okCount() >= after + 25 || undefined, 60_000, 'steady traffic after the upgrade');
    await eventually(async () => (await labAgentStarts(LAB, 'node-a')).find((e) => e.event === 'exit' && e.pid === oldPid), 40_000, 'the old agent exiting after its drain');
    c.kill('SIGTERM');
    await exited;
    t.deepEqual(results.filter((r) => !r.ok), [], `requests failed across the upgrade (${results.length} sent)`);
    t.true(agent.workerPids.every((p) => !alive(p)), `the old agent's workers ${agent.workerPids.join(', ')} exited with it`);
    const now = await debugState();
    t.is(now.agent.pid, newPid);
    t.is(now.agent.workerPids.length, 2);
    t.true(now.agent.workerPids.every((p) => p > 0 && alive(p) && !agent.workerPids.includes(p)), `the new agent's workers ${now.agent.workerPids.join(', ')}`);
  });

  test.serial('a stop (SIGTERM) drains every worker and leaves none behind', async (t) => {
    const { agent } = await debugState();
    await labStopAgent(LAB, 'node-a');
    t.true(agent.workerPids.every((p) => !alive(p)), `workers ${agent.workerPids.join(', ')} exited with their agent`);
  });
}
