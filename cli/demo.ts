// `npm run demo` / `nodemesh demo [--once]`: the sample application (unmodified,
// mesh-unaware HTTP services in deploy/lab/samples, opted in by a namespace label) in the
// lab; traffic from a client pod; what flowed through the node proxies, from their
// /metrics. Ctrl-C tears everything down. `--once`: one round, the summary, teardown, and
// exit 0 only if the traffic flowed through the mesh. `--screenshot FILE`: after the first
// round, a PNG of the node dashboard (15020/dashboard) of the node that carried the most
// requests, taken with headless Chromium (the README's picture). `--multicluster`: the same
// across two clusters joined by east-west gateways (demo-multicluster.ts).
import { parseArgs } from 'node:util';
import type { LabState } from '../deploy/lab/lab.js';
import { demoRounds, execInPod, say } from './demo-rounds.js';
import { scrape, sumMetric, type Sample } from './prom-text.js';
import { packagePath } from '../common/paths.js';
import { screenshot } from './headless-chromium.js';

const SAMPLES = packagePath('deploy', 'lab', 'samples');
const DEFAULT_LAB = 'demo';
const DEFAULT_MULTICLUSTER_LAB = 'demo-mc';
const REQUESTS_PER_ROUND = 20;

export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { once: { type: 'boolean' }, name: { type: 'string' }, screenshot: { type: 'string' }, multicluster: { type: 'boolean' } } });
  if (values.multicluster) {
    if (values.screenshot) throw new Error('demo --multicluster: --screenshot is for the one-cluster demo');
    return (await import('./demo-multicluster.js')).runMulticlusterDemo({ name: values.name ?? DEFAULT_MULTICLUSTER_LAB, once: values.once === true });
  }
  const labName = values.name ?? DEFAULT_LAB;
  say(`starting the lab "${labName}" from ${SAMPLES} (two nodes, a meshed namespace "demo")…`);
  return demoRounds({
    name: labName,
    dir: SAMPLES,
    once: values.once === true,
    say,
    prepare: async (state) => state,
    round: async (state, first) => {
      const ok = await round(state);
      if (first && values.screenshot) await dashboardPicture(state, values.screenshot);
      return ok;
    },
  });
}

async function round(state: LabState): Promise<boolean> {
  say(`client pod demo/client: ${REQUESTS_PER_ROUND} requests to http://frontend/ (frontend calls http://backend/)`);
  const lines = await execInPod(state, 'demo/client', ['node', 'client.js'], {
    COUNT: String(REQUESTS_PER_ROUND),
    INTERVAL_MS: '20',
  });
  const answers = lines.map((l) => JSON.parse(l) as { status?: number; body?: { backend?: { pod?: string; remote?: string } } });
  const good = answers.filter((a) => a.status === 200);
  const byBackend = new Map<string, number>();
  for (const a of good) {
    const pod = a.body?.backend?.pod ?? '?';
    byBackend.set(pod, (byBackend.get(pod) ?? 0) + 1);
  }
  say(`${good.length}/${answers.length} answered 200; backends: ${[...byBackend].map(([p, n]) => `${p}×${n}`).join(', ')}`);
  const remote = good[0]?.body?.backend?.remote;
  if (remote) say(`the backend saw the frontend's connection arrive from ${remote} (${whoIs(state, remote)})`);

  say('what flowed through the node proxies (istio_requests_total and istio_tcp_* from each agent /metrics):');
  let throughMesh = 0;
  for (const n of state.nodes) {
    const samples = await scrape(n.agentAdmin);
    const services = new Set(
      samples
        .filter((s) => (s.name === 'istio_tcp_connections_opened_total' || s.name === 'istio_requests_total') && s.labels.reporter === 'source')
        .map((s) => s.labels.destination_service!),
    );
    for (const svc of [...services].sort()) {
      const m = { destination_service: svc, reporter: 'source' };
      const opened = sumMetric(samples, 'istio_tcp_connections_opened_total', m);
      const requests = sumMetric(samples, 'istio_requests_total', m);
      throughMesh += opened + requests;
      say(
        `  ${n.name.padEnd(8)} → ${svc.padEnd(36)} requests ${String(requests).padStart(4)} (${codes(samples, svc)})  ` +
          `connections ${String(opened).padStart(3)}  ` +
          (requests > 0
            ? `body bytes ↑${sumMetric(samples, 'istio_request_bytes_sum', m)} ↓${sumMetric(samples, 'istio_response_bytes_sum', m)}  `
            : `bytes ↑${sumMetric(samples, 'istio_tcp_received_bytes_total', m)} ↓${sumMetric(samples, 'istio_tcp_sent_bytes_total', m)}  `) +
          `from ${sources(samples, svc)}`,
      );
    }
  }
  const ok = good.length === answers.length && answers.length === REQUESTS_PER_ROUND && throughMesh > 0 && byBackend.size > 0;
  say(ok ? 'OK: the traffic flowed through the mesh' : 'FAILED: the traffic did not flow through the mesh as expected');
  return ok;
}

/** Whose address `remote` (ip:port as a server saw it) is: a pod of the lab, or a node's. */
function whoIs(state: LabState, remote: string): string {
  const ip = remote.replace(/^::ffff:/, '').replace(/:\d+$/, '');
  const pod = state.pods.find((p) => p.ip === ip);
  if (pod) return `pod ${pod.namespace}/${pod.name}'s own address: the mesh keeps the client's address`;
  const node = state.nodes.find((n) => n.ip === ip || n.podBridgeIp === ip);
  return node ? `node ${node.name}'s address, not the client pod's` : 'not an address of the lab';
}

/** A PNG of the dashboard of the node whose proxy handled the most requests. */
async function dashboardPicture(state: LabState, file: string): Promise<void> {
  let best = state.nodes[0]!;
  let most = -1;
  for (const n of state.nodes) {
    const requests = sumMetric(await scrape(n.agentAdmin), 'istio_requests_total');
    if (requests > most) [best, most] = [n, requests];
  }
  // two scrapes a second apart (virtual time) so that the rates are filled in
  await screenshot(`http://${best.agentAdmin}/dashboard`, file, { budgetMs: 2_500, size: { width: 1400, height: 1000 } });
  say(`the node dashboard of ${best.name} (http://${best.agentAdmin}/dashboard) written to ${file}`);
}

/** `200×20` — istio_requests_total by response code, for one destination service. */
function codes(samples: Sample[], svc: string): string {
  const by = new Map<string, number>();
  for (const x of samples) {
    if (x.name !== 'istio_requests_total' || x.labels.destination_service !== svc || x.labels.reporter !== 'source') continue;
    by.set(x.labels.response_code!, (by.get(x.labels.response_code!) ?? 0) + x.value);
  }
  return [...by].map(([c, n]) => `${c}×${n}`).join(', ') || 'none';
}

function sources(samples: Sample[], svc: string): string {
  const s = new Set(
    samples
      .filter((x) => x.name === 'istio_tcp_connections_opened_total' && x.labels.destination_service === svc)
      .map((x) => `${x.labels.source_workload_namespace}/${x.labels.source_workload}`),
  );
  return [...s].join(', ');
}

