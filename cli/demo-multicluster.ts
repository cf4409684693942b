// `nodemesh demo --multicluster`: the two-cluster sample (deploy/lab/samples-multicluster)
// in a two-cluster lab. The client and the frontend run in cluster-a, the backend only in
// cluster-b, reached by its usual name; the networks are joined only through the east-west
// gateways. One round: the client's requests, who answered, and what each side counted,
// from the agents' and gateways' /metrics (Istio's names, with source_cluster and
// destination_cluster). `--once` exits 0 only if every request was answered by cluster-b's
// backend and cluster-b's node proxy counted them as coming from cluster-a: the only way
// there is through the gateways.
import { labClusters, type LabState } from '../deploy/lab/lab.js';
import { demoRounds, execInPod, say } from './demo-rounds.js';
import { packagePath } from '../common/paths.js';
import { scrape, sumMetric } from './prom-text.js';

const SAMPLES = packagePath('deploy', 'lab', 'samples-multicluster');
const REQUESTS_PER_ROUND = 20;
/** how long a new lab may take before the first request crosses (a failure bound) */
const CONVERGE_MS = 60_000;

export async function runMulticlusterDemo(opts: { name: string; once: boolean }): Promise<number> {
  say(`starting the two-cluster lab "${opts.name}" from ${SAMPLES} (cluster-a: client, frontend; cluster-b: backend; one gateway each)…`);
  return demoRounds({
    name: opts.name,
    dir: SAMPLES,
    once: opts.once,
    say,
    progress: (s) => say(`  … ${s}`),
    prepare: async () => (await labClusters(opts.name)) as [LabState, LabState],
    round: ([a, b]) => round(a, b),
  });
}

async function round(a: LabState, b: LabState): Promise<boolean> {
  const ca = a.cluster!;
  const cb = b.cluster!;
  say(`cluster ${ca.name} (network ${ca.network}, gateway ${ca.gateways[0]?.address}) → cluster ${cb.name} (network ${cb.network}, gateway ${cb.gateways[0]?.address})`);
  say(`client pod demo/client (${ca.name}): ${REQUESTS_PER_ROUND} requests to http://frontend/; the frontend calls http://backend.demo.svc.cluster.local/, served in ${cb.name} only`);
  await converged(a);
  const before = await crossed(b, ca.name, cb.name);
  const lines = await execInPod(a, 'demo/client', ['node', '../../samples/client.js'], { COUNT: String(REQUESTS_PER_ROUND), INTERVAL_MS: '20', TARGET_URL: 'http://frontend/' });
  const answers = lines.map((l) => JSON.parse(l) as { status?: number; body?: { backend?: { pod?: string; body?: { pod?: string } } } });
  const good = answers.filter((x) => x.status === 200);
  const podOf = (x: (typeof answers)[number]) => x.body?.backend?.pod ?? x.body?.backend?.body?.pod ?? '?';
  const byBackend = new Map<string, number>();
  for (const x of good) byBackend.set(podOf(x), (byBackend.get(podOf(x)) ?? 0) + 1);
  say(`${good.length}/${answers.length} answered 200; backends: ${[...byBackend].map(([p, n]) => `${p}×${n}`).join(', ') || 'none'}`);
  const remote = (good[0]?.body?.backend as { remote?: string } | undefined)?.remote;
  if (remote) {
    const ip = remote.replace(/^::ffff:/, '').replace(/:\d+$/, '');
    const pod = a.pods.find((p) => p.ip === ip);
    say(`the backend in ${cb.name} saw the frontend's connection arrive from ${remote}${pod ? ` (pod ${pod.namespace}/${pod.name} of ${ca.name}: the mesh keeps the client's address across clusters)` : ''}`);
  }
  const inB = new Set(b.pods.map((p) => p.name));
  const allFromB = good.length > 0 && [...byBackend.keys()].every((p) => inB.has(p));

  say('what each side counted (istio_requests_total, Istio labels):');
  for (const [lab, reporter] of [[a, 'source'], [b, 'destination']] as const) {
    for (const n of lab.nodes) {
      const samples = await scrape(n.agentAdmin);
      const count = sumMetric(samples, 'istio_requests_total', { reporter, source_cluster: ca.name, destination_cluster: cb.name });
      if (count > 0) say(`  ${lab.cluster!.name}/${n.name.padEnd(8)} reporter=${reporter.padEnd(11)} source_cluster=${ca.name} destination_cluster=${cb.name}: ${count}`);
    }
  }
  for (const lab of [a, b]) {
    for (const g of lab.cluster!.gateways) {
      const samples = await scrape(g.admin).catch(() => []);
      say(`  ${lab.cluster!.name} gateway ${g.address}:15008: tunnels ${sumMetric(samples, 'nodemesh_gateway_tunnels_total')} (open ${sumMetric(samples, 'nodemesh_gateway_tunnels_open')}), refused ${sumMetric(samples, 'nodemesh_gateway_refused_total')}`);
    }
  }
  const after = await crossed(b, ca.name, cb.name);
  const counted = after - before;
  const ok = answers.length === REQUESTS_PER_ROUND && good.length === answers.length && allFromB && counted >= REQUESTS_PER_ROUND;
  say(ok
    ? `OK: every request crossed from ${ca.name} to ${cb.name} through the east-west gateways (${counted} counted by ${cb.name}'s node proxy as from ${ca.name})`
    : `FAILED: the traffic did not cross through the gateways as expected (answers from ${cb.name}: ${allFromB}, counted in ${cb.name}: ${counted})`);
  return ok;
}

/**
 * Until the first answer through the frontend: each control plane reads the other cluster
 * (its Services, endpoints and gateway) after it is ready, so the first seconds of a new lab
 * may route nowhere yet. Bounded: a mesh that does not converge fails the round.
 */
async function converged(a: LabState): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < CONVERGE_MS) {
    const [line] = await execInPod(a, 'demo/client', ['node', '../../samples/client.js'], { COUNT: '1', TARGET_URL: 'http://frontend/' });
    if (line && (JSON.parse(line) as { status?: number }).status === 200) {
      say(`the mesh answered across the clusters after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  say(`no answer through the frontend within ${CONVERGE_MS / 1000} s`);
}

/** Requests cluster `to`'s node proxies served from cluster `from` (reporter=destination). */
async function crossed(lab: LabState, from: string, to: string): Promise<number> {
  let n = 0;
  for (const node of lab.nodes) n += sumMetric(await scrape(node.agentAdmin), 'istio_requests_total', { reporter: 'destination', source_cluster: from, destination_cluster: to });
  return n;
}

