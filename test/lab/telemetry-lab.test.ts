// Observability in the lab, as an Istio user reads it (issue 11): known traffic from a
// meshed client on node-a to pods on node-b, over HBONE with the real CA and mesh-wide
// STRICT. Both node proxies report each request once — node-a as reporter="source", node-b
// as reporter="destination" — with Istio's label set (workloads by owner name, SPIFFE
// principals, response code and flags, mutual_tls); retries and circuit-breaker trips show
// in nodemesh's counters; /stats/prometheus serves what /metrics does; promtool accepts
// the exposition but for Istio's own millisecond unit.
import test from 'ava';
import { spawn } from 'node:child_process';
import { parsePromText, scrape, sumMetric, type Sample } from '../../cli/prom-text.js';
import { labPerFile, type Lab } from '../helpers/lab-per-file.js';
import { canRunPrivileged } from '../helpers/privileged.js';
import { packagePath } from '../../common/paths.js';

const FIXTURE = packagePath('test', 'fixtures', 'telemetry');
const CLIENT = packagePath('test', 'fixtures', 'traffic', 'client.js');
const LAB = 'h11-telemetry';
const TD = 'spiffe://cluster.local/ns/shop/sa';

interface Load {
  total: number;
  status: Record<string, number>;
  overloaded: number;
}

const client = async <T>(lab: Lab, ...args: string[]) => JSON.parse(await lab.output('shop/client', ['node', CLIENT, ...args])) as T;

async function served(lab: Lab, pod: string): Promise<number> {
  return (JSON.parse(await lab.output(`shop/${pod}`, ['curl', '-sS', 'http://127.0.0.1:8080/__stats'])) as { count: number }).count;
}

/** `promtool check metrics` on an exposition: its complaints, one per line. */
function promtool(text: string): Promise<{ code: number; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code: code ?? -1, lines: out.split('\n').filter(Boolean) }));
    p.stdin.end(text);
  });
}

const text = async (admin: string, path: string) => {
  const res = await fetch(`http://${admin}${path}`, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`${admin}${path}: HTTP ${res.status}`);
  return res.text();
};

/** The series of Istio's and nodemesh's counters of one scrape, as `name{labels} value` (process metrics vary between scrapes). */
const stableSeries = (samples: Sample[]) =>
  samples
    .filter((s) => /^(istio_|nodemesh_agent_(retries|retry_overflow|circuit_breaker|outlier|authorization))/.test(s.name))
    .map((s) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())} ${s.value}`)
    .sort();

if (canRunPrivileged('telemetry in the lab')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB });

  test.serial('a request across two nodes is counted once by each reporter, with Istio’s labels', async (t) => {
    const a = lab.node('node-a').agentAdmin;
    const b = lab.node('node-b').agentAdmin;
    const base = { source_workload: 'client', destination_workload: 'web', destination_service_name: 'web' };
    const [a0, b0] = [await scrape(a), await scrape(b)];
    const r = await client<Load>(lab, 'load', 'http://web.shop/hello', '25', '5');
    t.deepEqual(r.status, { '200': 25 });

    const [a1, b1] = [await scrape(a), await scrape(b)];
    const delta = (s1: Sample[], s0: Sample[], labels: Record<string, string>) => sumMetric(s1, 'istio_requests_total', labels) - sumMetric(s0, 'istio_requests_total', labels);
    const exact = {
      ...base,
      source_workload_namespace: 'shop',
      destination_workload_namespace: 'shop',
      destination_service: 'web.shop.svc.cluster.local',
      source_principal: `${TD}/client`,
      destination_principal: `${TD}/web`,
      source_app: 'client',
      destination_app: 'web',
      source_canonical_service: 'client',
      destination_canonical_service: 'web',
      request_protocol: 'http',
      response_code: '200',
      response_flags: '-',
      connection_security_policy: 'mutual_tls',
    };
    t.is(delta(a1, a0, { ...exact, reporter: 'source' }), 25, 'node-a reports every request as the source');
    const seen = b1.filter((x) => x.name === 'istio_requests_total' && x.labels.reporter === 'destination' && x.labels.destination_service_name === 'web');
    t.is(delta(b1, b0, { ...exact, reporter: 'destination' }), 25, `node-b reports every request as the destination; it has ${JSON.stringify(seen)}`);
    t.is(delta(a1, a0, { ...base, reporter: 'destination' }), 0, 'node-a is not the destination');
    t.is(delta(b1, b0, { ...base, reporter: 'source' }), 0, 'node-b is not the source');
    // the duration and size histograms count the same requests at the destination
    const count = (s: Sample[], name: string) => sumMetric(s, name, { ...base, reporter: 'destination' });
    t.is(count(b1, 'istio_request_duration_milliseconds_count') - count(b0, 'istio_request_duration_milliseconds_count'), 25);
    t.is(count(b1, 'istio_response_bytes_count') - count(b0, 'istio_response_bytes_count'), 25);
    t.true(count(b1, 'istio_response_bytes_sum') - count(b0, 'istio_response_bytes_sum') >= 25 * 40, 'the response bodies are counted');
    // every label Istio defines is there, none extra
    const one = b1.find((s) => s.name === 'istio_requests_total' && s.labels.reporter === 'destination' && s.labels.destination_workload === 'web')!;
    t.deepEqual(Object.keys(one.labels).sort(), [
      'connection_security_policy', 'destination_app', 'destination_canonical_revision', 'destination_canonical_service', 'destination_cluster',
      'destination_principal', 'destination_service', 'destination_service_name', 'destination_service_namespace', 'destination_version',
      'destination_workload', 'destination_workload_namespace', 'grpc_response_status', 'reporter', 'request_protocol', 'response_code',
      'response_flags', 'source_app', 'source_canonical_revision', 'source_canonical_service', 'source_cluster', 'source_principal',
      'source_version', 'source_workload', 'source_workload_namespace',
    ]);
  });

  test.serial('retries after forced 503s: counted per service and outcome at the source; each try is a request at the destination', async (t) => {
    const a = lab.node('node-a').agentAdmin;
    const b = lab.node('node-b').agentAdmin;
    const [a0, b0] = [await scrape(a), await scrape(b)];
    const before = await served(lab, 'flaky-1');
    const r = await client<Load>(lab, 'load', 'http://flaky.shop/', '30', '1');
    t.deepEqual(r.status, { '200': 30 }, 'every 503 was retried away');
    const tries = (await served(lab, 'flaky-1')) - before;
    const [a1, b1] = [await scrape(a), await scrape(b)];
    const svc = 'flaky.shop.svc.cluster.local';
    const d = (s1: Sample[], s0: Sample[], name: string, l: Record<string, string>) => sumMetric(s1, name, l) - sumMetric(s0, name, l);
    t.is(d(a1, a0, 'nodemesh_agent_retries_total', { destination_service: svc, outcome: 'success' }), tries - 30, `${tries} tries for 30 requests`);
    t.is(d(a1, a0, 'istio_requests_total', { reporter: 'source', destination_service: svc, response_code: '200' }), 30, 'the source counts the requests');
    t.is(d(b1, b0, 'istio_requests_total', { reporter: 'destination', destination_service: svc, response_code: '503', response_flags: '-' }), tries - 30, 'the destination counts each failed try');
    t.is(d(b1, b0, 'istio_requests_total', { reporter: 'destination', destination_service: svc, response_code: '200' }), 30);
  });

  test.serial('past http1MaxPendingRequests: 503 UO at the source, counted as circuit-breaker overflows', async (t) => {
    const a = lab.node('node-a').agentAdmin;
    const a0 = await scrape(a);
    const r = await client<Load>(lab, 'load', 'http://busy.shop/', '6', '6');
    t.deepEqual(r.status, { '200': 2, '503': 4 });
    const a1 = await scrape(a);
    const cluster = 'outbound|80||busy.shop.svc.cluster.local';
    t.is(sumMetric(a1, 'nodemesh_agent_circuit_breaker_overflow_total', { cluster_name: cluster }) - sumMetric(a0, 'nodemesh_agent_circuit_breaker_overflow_total', { cluster_name: cluster }), 4);
    t.is(
      sumMetric(a1, 'istio_requests_total', { reporter: 'source', destination_service_name: 'busy', response_code: '503', response_flags: 'UO' }) -
        sumMetric(a0, 'istio_requests_total', { reporter: 'source', destination_service_name: 'busy', response_code: '503', response_flags: 'UO' }),
      4,
    );
    t.is(sumMetric(a1, 'nodemesh_agent_pending_requests', { cluster_name: cluster }), 0, 'nothing pending once answered');
    t.true(sumMetric(a1, 'nodemesh_agent_upstream_connections', { cluster_name: cluster, protocol: 'http1' }) >= 1, 'the pool keeps its connection alive');
  });

  test.serial('the node’s own cost: meshed pods, open connections, memory saved against a sidecar per pod', async (t) => {
    const b = await scrape(lab.node('node-b').agentAdmin);
    const meshedOnB = lab.state.pods.filter((p) => p.node === 'node-b').length;
    t.is(sumMetric(b, 'nodemesh_agent_meshed_pods'), meshedOnB);
    const rss = sumMetric(b, 'nodemesh_agent_process_resident_memory_bytes');
    t.true(rss > 0);
    // the RSS is read twice in one scrape (prom-client's gauge, then the savings gauge)
    const saved = sumMetric(b, 'nodemesh_agent_sidecar_memory_saved_bytes');
    t.true(Math.abs(saved - (meshedOnB * 40_000_000 - rss)) < 8 << 20, `saved ${saved} for ${meshedOnB} pods and ${rss} bytes resident`);
    t.true(b.some((s) => s.name === 'nodemesh_agent_nodejs_eventloop_lag_p99_seconds'), 'event-loop delay');
    t.true(b.some((s) => s.name === 'nodemesh_agent_process_cpu_seconds_total'), 'CPU');
    t.true(b.some((s) => s.name === 'nodemesh_agent_open_connections' && s.labels.reporter === 'destination'), 'open connections');
  });

  test.serial('/stats/prometheus is /metrics, and promtool accepts both but for Istio’s millisecond unit', async (t) => {
    for (const node of ['node-a', 'node-b']) {
      const admin = lab.node(node).agentAdmin;
      const [m, s] = [await text(admin, '/metrics'), await text(admin, '/stats/prometheus')];
      t.deepEqual(stableSeries(parsePromText(s)), stableSeries(parsePromText(m)), `${node}: the same series and values`);
      const check = await promtool(s);
      t.deepEqual(check.lines, ['istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"'], `${node}: ${check.lines.join('; ')}`);
    }
  });
}
