// Agent memory per meshed pod, in a lab of its own ("bench-pods"): one node per pod count
// (0, 100, 500 in the full suite), every pod meshed and sleeping, each with its own service
// account (the worst case: one workload certificate per pod). The agents run side by side
// with the same snapshot (every node's workloads), so the difference between two agents is
// what their own pods cost: enrolment, certificates, per-pod state. Marginal bytes per pod =
// the difference of RSS between two nodes over the difference of their pod counts.
//
// A lab node of more than 250 pods gets a /23 (up to 506 pods) or a /22 of pod addresses
// (deploy/lab/lab-plan.ts). `lab up`'s own duration at this size is reported too (is a lab
// this big practical?).
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { scrape, sumMetric } from '../../../cli/prom-text.js';
import { labAgentPid, labDown, labUp, type LabState } from '../../../deploy/lab/lab.js';
import { labStateDir } from '../../../deploy/lab/lab-state.js';
import { benchTempDir, cgroupPids, cpuSeconds, removeBenchTempDir, rssBytes, rssSettled } from '../lab-exec.js';
import { agentGcEnv, collectGarbage } from '../agent-gc.js';
import { scenario, type ScenarioResult } from '../scenario.js';
import type { Settings } from '../settings.js';
import { median } from '../stats.js';

export const PODS_LAB = 'bench-pods';

/** The agent's peak RSS since it started (VmHWM): the enrolment burst's high-water. */
async function peakRssBytes(pid: number): Promise<number> {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

export function podsDocuments(steps: number[]): Record<string, unknown>[] {
  const docs: Record<string, unknown>[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'pods', labels: { 'nodemesh.io/mesh': 'enabled' } } },
  ];
  for (const n of steps) {
    const node = `pods-${n}`;
    docs.push({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } });
    for (let i = 0; i < n; i++) {
      docs.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `n${n}-p${i}`, namespace: 'pods' },
        spec: { nodeName: node, serviceAccountName: `n${n}-sa${i}`, containers: [{ name: 'sleep', command: ['sleep', 'infinity'] }] },
      });
    }
  }
  return docs;
}

interface Identity {
  spiffeId: string;
  notAfter?: string;
}

async function identitiesIssued(admin: string): Promise<number> {
  const res = await fetch(`http://${admin}/debug/state`, { signal: AbortSignal.timeout(10_000) });
  const state = (await res.json()) as { identities?: Identity[] };
  return (state.identities ?? []).filter((i) => i.notAfter).length;
}

/** how far an agent's RSS may move over 20 s and count as settled */
const SETTLED_BYTES = 3 * 2 ** 20;

export function podsScenario(s: Settings, log: (m: string) => void): Promise<ScenarioResult> {
  const steps = s.pods.steps;
  const method =
    `A lab of its own with one node per pod count (${steps.join(', ')}), every pod meshed and sleeping with its own service account; once every agent has enrolled its pods and holds their certificates, ` +
    `${s.pods.settleSeconds} s of quiet, then a full garbage collection in each agent (the enrolment burst's garbage) and until every agent's RSS has settled (moved ≤ ${SETTLED_BYTES / 2 ** 20} MiB over 20 s, at most ${s.pods.settleMaxSeconds} s: freed memory goes back), then each agent's RSS (/proc/<pid>/status) and V8 heap used, each reading right after a full garbage collection in the agent (median of ${s.pods.samples} readings 1 s apart). Marginal per pod between consecutive counts. The peak is the agent's VmHWM (the burst's high-water). Then each agent's CPU (/proc/<pid>/stat) over ${s.pods.idleCpuSeconds} s with no traffic, all agents at once: what a node with these pods and nothing to carry costs.`;
  return scenario('pods', 'Agent memory per meshed pod', method, log, async (out) => {
    const dir = await benchTempDir('pods-');
    const gcDir = path.join(dir, 'gc');
    let state: LabState | undefined;
    try {
      await writeFile(
        path.join(dir, 'cluster.yaml'),
        podsDocuments(steps)
          .map((d) => `---\n${stringify(d)}`)
          .join(''),
      );
      const t0 = performance.now();
      // the agents collect their garbage when asked (pods/collect-garbage.ts), before each reading
      await mkdir(gcDir);
      state = await labUp({
        dir,
        name: PODS_LAB,
        timeouts: { agentsMs: 300_000, podsMs: 300_000 },
        env: agentGcEnv(gcDir),
      });
      const upSeconds = (performance.now() - t0) / 1000;
      log(`  lab up with ${steps.reduce((a, b) => a + b, 0)} pods in ${upSeconds.toFixed(0)} s`);
      // every agent has enrolled its pods (ready) and holds a certificate for each
      const t1 = performance.now();
      const deadline = Date.now() + 300_000;
      for (const n of steps) {
        const node = state.nodes.find((x) => x.name === `pods-${n}`)!;
        for (;;) {
          const enrolled = sumMetric(await scrape(node.agentAdmin), 'nodemesh_agent_enrolled_pods');
          const certs = await identitiesIssued(node.agentAdmin);
          if (enrolled === n && certs === n) break;
          if (Date.now() > deadline)
            throw new Error(`node pods-${n}: ${enrolled} pods enrolled and ${certs} certificates after 300 s, expected ${n}`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      const certSeconds = (performance.now() - t1) / 1000;
      await new Promise((r) => setTimeout(r, s.pods.settleSeconds * 1000));
      const pids = new Map<number, number>();
      for (const n of steps) {
        const node = state.nodes.find((x) => x.name === `pods-${n}`)!;
        // the agent the lab's supervisor runs (the state file names the supervisor), checked
        // against the agent's cgroup (which also holds the short-lived commands the agent runs)
        const pid = await labAgentPid(PODS_LAB, node.name);
        if (pid === undefined || !(await cgroupPids(node.agentCgroup)).includes(pid))
          throw new Error(`node pods-${n}: its agent (pid ${pid ?? 'unknown'}) is not running in ${node.agentCgroup}`);
        pids.set(n, pid);
      }
      // the enrolment burst's garbage is collected at once (left to V8's memory reducer it took
      // ~30 s here), then the allocator returns the freed pages over its decay time. An idle
      // agent's RSS wanders by 1–3 MiB every few seconds (timers, its own scrapes), so a
      // 1 MiB bound never held within 150 s; 3 MiB still shows a release in progress
      for (const pid of pids.values()) await collectGarbage(pid, gcDir);
      const settled = await rssSettled([...pids.values()], s.pods.settleMaxSeconds, SETTLED_BYTES);
      log(
        settled.seconds === undefined
          ? `  RSS still moving after ${s.pods.settleMaxSeconds} s: read anyway`
          : `  RSS settled ${settled.seconds.toFixed(0)} s after the last certificate`,
      );
      const agents: { pods: number; rssMB: number; heapUsedMB: number; peakRssMB: number; idleCpuMsPerS?: number }[] = [];
      for (const n of steps) {
        const pid = pids.get(n)!;
        const rss: number[] = [];
        const heap: number[] = [];
        for (let i = 0; i < s.pods.samples; i++) {
          if (i > 0) await new Promise((r) => setTimeout(r, 1000));
          const after = await collectGarbage(pid, gcDir);
          rss.push(await rssBytes(pid));
          heap.push(after.heapUsed);
        }
        agents.push({
          pods: n,
          rssMB: median(rss) / 2 ** 20,
          heapUsedMB: median(heap) / 2 ** 20,
          peakRssMB: (await peakRssBytes(pid)) / 2 ** 20,
        });
      }
      // idle CPU: its timers (heartbeat, the event-loop delay sampling, flushes) and whatever
      // grows with its pods; one window for every agent, after the garbage collections above.
      // The full suite's 30 s hold one period of the agent's safety-net rescan (agent.ts): at
      // 500 pods, 10-s windows read 2–3 ms/s without periodic work in them and 8–16 with, so
      // a window as long as the period reads the average rather than whether it caught one
      await new Promise((r) => setTimeout(r, 1000));
      const cpu0 = await Promise.all(agents.map((a) => cpuSeconds(pids.get(a.pods)!)));
      await new Promise((r) => setTimeout(r, s.pods.idleCpuSeconds * 1000));
      const cpu1 = await Promise.all(agents.map((a) => cpuSeconds(pids.get(a.pods)!)));
      agents.forEach((a, i) => (a.idleCpuMsPerS = ((cpu1[i]! - cpu0[i]!) * 1000) / s.pods.idleCpuSeconds));
      const marginal = agents.slice(1).map((a, i) => {
        const prev = agents[i]!;
        const dn = a.pods - prev.pods;
        return {
          from: prev.pods,
          to: a.pods,
          rssBytesPerPod: ((a.rssMB - prev.rssMB) * 2 ** 20) / dn,
          heapBytesPerPod: ((a.heapUsedMB - prev.heapUsedMB) * 2 ** 20) / dn,
        };
      });
      out.data = {
        labUpSeconds: upSeconds,
        certificatesSeconds: certSeconds,
        settleSeconds: settled.seconds ?? null,
        pods: steps.reduce((a, b) => a + b, 0),
        agents,
        marginal,
      };
      for (const a of agents)
        log(
          `  ${String(a.pods).padStart(4)} pods: agent RSS ${a.rssMB.toFixed(1)} MB (peak ${a.peakRssMB.toFixed(1)}), heap used ${a.heapUsedMB.toFixed(1)} MB, idle CPU ${a.idleCpuMsPerS!.toFixed(1)} ms/s`,
        );
      for (const m of marginal)
        log(
          `  ${m.from} → ${m.to}: ${(m.rssBytesPerPod / 1024).toFixed(1)} KiB RSS, ${(m.heapBytesPerPod / 1024).toFixed(1)} KiB heap per pod`,
        );
    } catch (err) {
      // a lab that failed to come up (a CNI ADD past its deadline, say) keeps its processes'
      // logs for whoever reads the report: lab down removes them with the lab
      const logs = path.join(labStateDir(PODS_LAB), 'logs');
      const kept = path.join(os.tmpdir(), `nodemesh-bench-pods-logs-${Date.now()}`);
      if (
        await cp(logs, kept, { recursive: true }).then(
          () => true,
          () => false,
        )
      )
        out.notes.push(`the lab's logs (control plane, agents) are kept in ${kept}`);
      throw err;
    } finally {
      await labDown({ name: PODS_LAB }).catch((err: unknown) => out.errors.push(`lab down ${PODS_LAB}: ${(err as Error).message}`));
      await removeBenchTempDir(dir);
    }
  });
}
