// Observability in the lab, as an Istio user reads it (issue 11): known traffic from a
// meshed client on node-a to pods on node-b, over HBONE with the real CA and mesh-wide
// STRICT. Both node proxies report each request once — node-a as reporter="source", node-b
// as reporter="destination" — with Istio's label set (workloads by owner name, SPIFFE
// principals, response code and flags, mutual_tls); retries and circuit-breaker trips show
// in nodemesh's counters; /stats/prometheus serves what /metrics does; promtool accepts
// the exposition but for Istio's own millisecond unit.
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { eventually } from '../helpers/eventually.js';
import { promtoolFindings } from '../helpers/promtool.js';
import { parsePromText, scrape, sumMetric, type Sample } from '../../cli/prom-text.js';
import { labPerFile, type Lab } from '../helpers/lab-per-file.js';
import { canRunPrivileged } from '../helpers/privileged.js';
import { packagePath } from '../../common/paths.js';
import { dumpDom } from '../../cli/headless-chromium.js';
import { cardValue, cellValue } from '../helpers/dashboard-dom.js';
import { rm } from 'node:fs/promises';

const FIXTURE = packagePath('test', 'fixtures', 'telemetry');
const CLIENT = packagePath('test', 'fixtures', 'traffic', 'client.js');
const LAB = 'ob-telemetry';
const TD = 'spiffe://cluster.local/ns/shop/sa';
/** the collector pod: the first pod on node-b (cluster.yaml) */
const OTLP = 'http://10.244.1.2:4318/v1/traces';

interface AccessLine {
  [k: string]: unknown;
  reporter: string;
  path: string | null;
  response_code: number;
}

/** The access-log lines a node's agent wrote to its stdout (the lab keeps it in the agent's log), for one path. */
async function accessLines(lab: Lab, node: string, match: (l: AccessLine) => boolean): Promise<AccessLine[]> {
  const text = await readFile(lab.node(node).agentLog, 'utf8');
  const out: AccessLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{"start_time"')) continue;
    const l = JSON.parse(line) as AccessLine;
    if (match(l)) out.push(l);
  }
  return out;
}

/** Replaces a config file the way `kubectl apply` would: whole, at once. */
async function writeConfig(lab: Lab, file: string, text: string): Promise<void> {
  const tmp = path.join(lab.state.configDir, `.${file}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, path.join(lab.state.configDir, file));
}

/** Waits until both agents run the snapshot the control plane made after the change. */
async function applied(lab: Lab, after: number): Promise<void> {
  for (const n of ['node-a', 'node-b']) {
    try {
      await eventually(async () => sumMetric(await scrape(lab.node(n).agentAdmin), 'nodemesh_agent_snapshot_version') > after, 20_000, `${n} applies the new snapshot`);
    } catch (err) {
      const status = (await (await fetch(`http://${lab.state.controlAddress!.admin}/debug/config_status`)).json()) as { resources: { file: string }[] };
      throw new Error(`${(err as Error).message}; the control plane says: ${JSON.stringify(status.resources.filter((r) => !r.file.endsWith('cluster.yaml')))}`);
    }
  }
}
const version = async (lab: Lab) => sumMetric(await scrape(lab.node('node-a').agentAdmin), 'nodemesh_agent_snapshot_version');

interface Load {
  total: number;
  status: Record<string, number>;
  overloaded: number;
}

const client = async <T>(lab: Lab, ...args: string[]) => JSON.parse(await lab.output('shop/client', ['node', CLIENT, ...args])) as T;

async function served(lab: Lab, pod: string): Promise<number> {
  return (JSON.parse(await lab.output(`shop/${pod}`, ['curl', '-sS', 'http://127.0.0.1:8080/__stats'])) as { count: number }).count;
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
  const lab = labPerFile({ dir: FIXTURE, name: LAB, env: { NODEMESH_OTLP_ENDPOINT: OTLP, NODEMESH_TRACE_SAMPLING: '100' } });

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
    const meshedOnB = lab.state.pods.filter((p) => p.node === 'node-b' && p.namespace !== 'observability').length;
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

  test.serial('the node dashboard, in headless Chromium, shows the lab’s numbers; pods are refused it', async (t) => {
    const web = 'web.shop.svc.cluster.local';
    await client<Load>(lab, 'load', 'http://web.shop/dashboard-traffic', '10', '2');
    for (const [node, reporter] of [['node-a', 'source'], ['node-b', 'destination']] as const) {
      const admin = lab.node(node).agentAdmin;
      const before = await scrape(admin);
      const dom = await dumpDom(`http://${admin}/dashboard`, { budgetMs: 3_000 });
      const after = await scrape(admin);
      t.regex(dom, /<body[^>]* data-state="ready"/, `${node}: the page rendered`);
      t.regex(dom, new RegExp(`id="node">${node}<`));
      const row = `data-service="${web}" data-reporter="${reporter}"`;
      const shown = Number(cellValue(dom, row, 'requests'));
      const [lo, hi] = [sumMetric(before, 'istio_requests_total', { reporter, destination_service: web }), sumMetric(after, 'istio_requests_total', { reporter, destination_service: web })];
      t.true(shown >= 35 && shown >= lo && shown <= hi, `${node}: ${shown} requests to web shown, the scrapes say ${lo}..${hi}`);
      t.is(cellValue(dom, row, 'errors'), '0');
      const p50 = Number(cellValue(dom, row, 'p50'));
      t.true(p50 > 0 && p50 < 1000, `${node}: p50 ${p50} ms`);
      t.is(Number(cardValue(dom, 'meshed-pods')), sumMetric(after, 'nodemesh_agent_meshed_pods'), `${node}: meshed pods in ${/<div class="cards"[^]*?<h2/.exec(dom)?.[0] ?? dom.slice(0, 3000)}`);
      const saved = Number(cardValue(dom, 'memory-saved'));
      t.true(Number.isFinite(saved) && saved !== 0, `${node}: memory saved ${saved}`);
      t.is(cellValue(dom, `data-source="client.shop" data-destination="${web}" data-reporter="${reporter}"`, 'mtls'), 'mutual_tls');
    }
    const domA = await dumpDom(`http://${lab.node('node-a').agentAdmin}/dashboard`, { budgetMs: 3_000 });
    t.regex(domA, /data-pod="shop\/client"/, 'node-a lists its meshed pods');
    t.is(cellValue(domA, 'data-service="busy.shop.svc.cluster.local" data-reporter="source"', 'cb-trips'), '4', 'the circuit-breaker trips of busy');
    t.true(Number(cellValue(domA, 'data-service="flaky.shop.svc.cluster.local" data-reporter="source"', 'retries')) > 0, 'the retries of flaky');
    // a pod, meshed or not, gets nothing of it (agent/admin/admin-access.ts)
    for (const pod of ['observability/collector', 'shop/client']) {
      const code = await lab.output(pod, ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://${lab.node('node-a').ip}:15020/dashboard`]);
      t.is(code, '401', `${pod}`);
    }
  });

  test.serial('nodemesh tap --requests, as a process: only the requests its filters ask for, as JSON', async (t) => {
    const marker = `/tapped-${Date.now()}`;
    const cli = spawn(process.execPath, [packagePath('bin', 'nodemesh.js'), 'tap', '--name', LAB, '--node', 'node-b', '--requests', '--to', 'web', '--path', marker, '--status', '2xx', '-o', 'json', '--count', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    cli.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    cli.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number>((resolve) => cli.once('close', (code) => resolve(code ?? -1)));
    t.teardown(() => cli.kill());
    let done = false;
    void exited.then(() => (done = true));
    // the tap subscribes when its request reaches the agent: send until three were shown
    await eventually(async () => {
      if (done) return true;
      await lab.output('shop/client', ['curl', '-sS', `http://flaky.shop${marker}`]); // another Service: filtered out
      await lab.output('shop/client', ['curl', '-sS', `http://web.shop${marker}`]);
      return done;
    }, 30_000, 'three requests tapped', 200);
    t.is(await exited, 0, err);
    const events = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    t.is(events.length, 3);
    for (const e of events)
      t.like(e, { event: 'request', reporter: 'destination', method: 'GET', path: marker, status: 200, sourcePod: 'client', destinationPod: 'web-7c9d8f6b5d-x2k9p', destinationService: 'web.shop.svc.cluster.local', agent: lab.node('node-b').agentAdmin });
  });

  test.serial('/stats/prometheus is /metrics, and promtool accepts both but for Istio’s millisecond unit', async (t) => {
    for (const node of ['node-a', 'node-b']) {
      const admin = lab.node(node).agentAdmin;
      const [m, s] = [await text(admin, '/metrics'), await text(admin, '/stats/prometheus')];
      t.deepEqual(stableSeries(parsePromText(s)), stableSeries(parsePromText(m)), `${node}: the same series and values`);
      const findings = await promtoolFindings(s);
      t.deepEqual(findings, ['istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"'], `${node}: ${findings.join('; ')}`);
    }
  });

  test.serial('access logs: a Telemetry resource turns them on; one JSON line per request at each reporter, and per TCP connection', async (t) => {
    const v = await version(lab);
    await writeConfig(lab, 'telemetry.yaml', ['apiVersion: telemetry.istio.io/v1', 'kind: Telemetry', 'metadata: {name: mesh-default, namespace: istio-system}', 'spec:', '  accessLogging: [{providers: [{name: envoy}]}]', ''].join('\n'));
    await applied(lab, v);
    const marker = `/logged-${Date.now()}?secret=1`;
    const body = await lab.output('shop/client', ['curl', '-sS', '-A', 'telemetry-test/1', '-H', 'x-forwarded-for: 203.0.113.7', `http://web.shop${marker}`]);
    t.regex(body, /web-7c9d8f6b5d-x2k9p/);
    const pathOnly = marker.slice(0, marker.indexOf('?'));
    const [src] = await eventually(async () => { const l = await accessLines(lab, 'node-a', (x) => x.path === pathOnly); return l.length > 0 && l; }, 10_000, 'the source line');
    const [dst] = await eventually(async () => { const l = await accessLines(lab, 'node-b', (x) => x.path === pathOnly); return l.length > 0 && l; }, 10_000, 'the destination line');
    for (const [l, reporter] of [[src!, 'source'], [dst!, 'destination']] as const) {
      t.is(l.reporter, reporter);
      t.like(l, {
        method: 'GET', path: pathOnly, protocol: 'HTTP/1.1', response_code: 200, response_flags: '-', user_agent: 'telemetry-test/1',
        x_forwarded_for: '203.0.113.7', authority: 'web.shop', source_workload: 'client', source_namespace: 'shop', source_principal: `${TD}/client`,
        destination_workload: 'web', destination_namespace: 'shop', destination_principal: `${TD}/web`, connection_security_policy: 'mutual_tls',
      });
      t.true(typeof l.duration === 'number' && typeof l.bytes_sent === 'number' && (l.bytes_sent as number) > 0);
      t.regex(String(l.start_time), /^\d{4}-\d\d-\d\dT/);
      t.regex(String(l.trace_id), /^[0-9a-f]{32}$/);
    }
    t.regex(String(src!.request_id), /^[0-9a-f-]{36}$/, 'x-request-id generated at the source');
    t.is(dst!.request_id, src!.request_id, 'and carried to the destination');
    t.is(src!.upstream_cluster, 'outbound|80||web.shop.svc.cluster.local');
    t.is(src!.retries, 0);
    t.is(dst!.trace_id, src!.trace_id, 'one trace');

    // a TCP connection: one line at each reporter, no method or code, its bytes
    await lab.output('shop/client', ['curl', '-sS', 'http://blob.shop:9000/tcp-line']);
    const tcp = (l: AccessLine) => l.method === null && l.destination_workload === 'blob-1';
    const [ts] = await eventually(async () => { const l = await accessLines(lab, 'node-a', tcp); return l.length > 0 && l; }, 10_000, 'the source TCP line');
    const [td] = await eventually(async () => { const l = await accessLines(lab, 'node-b', tcp); return l.length > 0 && l; }, 10_000, 'the destination TCP line');
    t.like(ts, { reporter: 'source', response_code: 0, source_workload: 'client' });
    t.like(td, { reporter: 'destination', response_code: 0, connection_security_policy: 'mutual_tls' });
    t.true((ts!.bytes_received as number) > 0 && (ts!.bytes_sent as number) > 0);
  });

  test.serial('a Telemetry filter `response.code >= 400` logs only the failures; disabled for one namespace silences it', async (t) => {
    const v = await version(lab);
    await writeConfig(lab, 'telemetry.yaml', [
      'apiVersion: telemetry.istio.io/v1', 'kind: Telemetry', 'metadata: {name: mesh-default, namespace: istio-system}', 'spec:',
      '  accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 400"}}]', '---',
      'apiVersion: telemetry.istio.io/v1', 'kind: Telemetry', 'metadata: {name: hush, namespace: quiet}', 'spec:', '  accessLogging: [{disabled: true}]', '',
    ].join('\n'));
    await applied(lab, v);
    const ok = `/filtered-ok-${Date.now()}`;
    const bad = `/filtered-bad-${Date.now()}`;
    await lab.output('shop/client', ['curl', '-sS', `http://web.shop${ok}`]);
    // flaky answers 503 to its first request of three: retried at the source (200 there), each 503 try logged at the destination
    const r = await client<Load>(lab, 'load', `http://flaky.shop${bad}`, '6', '1');
    t.deepEqual(r.status, { '200': 6 });
    const failures = await eventually(async () => { const l = await accessLines(lab, 'node-b', (x) => x.path === bad); return l.length >= 2 && l; }, 10_000, 'the failed tries');
    t.true(failures.every((l) => l.response_code === 503 && l.reporter === 'destination'), JSON.stringify(failures.map((l) => l.response_code)));
    // the 200s were never written: at the source (all 200) and at the destination
    await lab.output('shop/client', ['curl', '-sS', `http://web.shop/flush-${Date.now()}`]);
    t.deepEqual(await accessLines(lab, 'node-a', (x) => x.path === ok || x.path === bad), []);
    t.deepEqual(await accessLines(lab, 'node-b', (x) => x.path === ok || x.response_code === 200 && x.path === bad), []);

    // namespace quiet: disabled; the mesh default (filtered) still applies to shop
    const v2 = await version(lab);
    await writeConfig(lab, 'telemetry.yaml', [
      'apiVersion: telemetry.istio.io/v1', 'kind: Telemetry', 'metadata: {name: mesh-default, namespace: istio-system}', 'spec:', '  accessLogging: [{providers: [{name: envoy}]}]', '---',
      'apiVersion: telemetry.istio.io/v1', 'kind: Telemetry', 'metadata: {name: hush, namespace: quiet}', 'spec:', '  accessLogging: [{disabled: true}]', '',
    ].join('\n'));
    await applied(lab, v2);
    const quiet = `/quiet-${Date.now()}`;
    const loud = `/loud-${Date.now()}`;
    await lab.output('quiet/hush', ['curl', '-sS', `http://web.shop${quiet}`]);
    await lab.output('shop/client', ['curl', '-sS', `http://web.shop${loud}`]);
    await eventually(async () => (await accessLines(lab, 'node-a', (x) => x.path === loud)).length === 1, 10_000, 'the shop client’s line');
    t.deepEqual(await accessLines(lab, 'node-a', (x) => x.path === quiet), [], 'the quiet namespace’s client logs nothing');
  });

  interface Span {
    traceId: string;
    spanId: string;
    parentSpanId?: string;
    kind: number;
    name: string;
    attrs: Record<string, string | boolean>;
    status: { code: number };
  }
  const spans = async () => JSON.parse(await lab.output('observability/collector', ['curl', '-sS', 'http://127.0.0.1:4318/spans'])) as Span[];

  test.serial('Telemetry metrics overrides and tracing customTags, applied per reporter', async (t) => {
    const v = await version(lab);
    await writeConfig(lab, 'telemetry-overrides.yaml', [
      'apiVersion: telemetry.istio.io/v1', 'kind: Telemetry', 'metadata: {name: web-metrics, namespace: shop}', 'spec:',
      '  selector: {matchLabels: {app: web}}',
      '  metrics: [{providers: [{name: prometheus}], overrides: [{match: {metric: REQUEST_COUNT, mode: SERVER}, disabled: true}, {match: {mode: SERVER}, tagOverrides: {source_principal: {operation: REMOVE}}}]}]', '---',
      'apiVersion: telemetry.istio.io/v1', 'kind: Telemetry', 'metadata: {name: client-tags, namespace: shop}', 'spec:',
      '  selector: {matchLabels: {app: client}}',
      '  tracing: [{match: {mode: CLIENT}, customTags: {team: {literal: {value: storefront}}, user: {header: {name: x-user, defaultValue: anonymous}}}}]', '',
    ].join('\n'));
    t.teardown(() => rm(path.join(lab.state.configDir, 'telemetry-overrides.yaml'), { force: true }));
    await applied(lab, v);
    const a = lab.node('node-a').agentAdmin;
    const b = lab.node('node-b').agentAdmin;
    const [a0, b0] = [await scrape(a), await scrape(b)];
    const r = await client<Load>(lab, 'load', 'http://web.shop/overridden', '10', '2');
    t.deepEqual(r.status, { '200': 10 });
    const [a1, b1] = [await scrape(a), await scrape(b)];
    const d = (s1: Sample[], s0: Sample[], name: string, l: Record<string, string>) => sumMetric(s1, name, l) - sumMetric(s0, name, l);
    const web = { destination_workload: 'web', source_workload: 'client' };
    t.is(d(b1, b0, 'istio_requests_total', { ...web, reporter: 'destination' }), 0, 'REQUEST_COUNT disabled at SERVER for web');
    t.is(d(b1, b0, 'istio_request_duration_milliseconds_count', { ...web, reporter: 'destination', source_principal: '' }), 10, 'the duration still counted, without source_principal');
    t.is(d(a1, a0, 'istio_requests_total', { ...web, reporter: 'source', source_principal: `${TD}/client` }), 10, 'the client’s reporter is untouched');

    const traceId = `${Date.now().toString(16).padStart(16, '0')}a3ce929d0e0e4736`.slice(-32);
    await lab.output('shop/client', ['curl', '-sS', '-H', `traceparent: 00-${traceId}-00f067aa0ba902b7-01`, '-H', 'x-user: alice', 'http://web.shop/tagged']);
    const trace = await eventually(async () => { const s = (await spans()).filter((x) => x.traceId === traceId); return s.length >= 2 && s; }, 15_000, 'the tagged trace');
    const client_ = trace.find((s) => s.kind === 3)!;
    const server = trace.find((s) => s.kind === 2)!;
    t.like(client_.attrs, { team: 'storefront', user: 'alice' }, 'CLIENT mode: the source proxy’s span has the tags');
    t.false('team' in server.attrs, 'and the destination proxy’s does not');

    const v2 = await version(lab);
    await rm(path.join(lab.state.configDir, 'telemetry-overrides.yaml'), { force: true });
    await applied(lab, v2);
  });

  test.serial('one request client → frontend → api across two nodes is one trace: source and destination spans nest hop by hop', async (t) => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const out = JSON.parse(await lab.output('shop/client', ['curl', '-sS', '-H', `traceparent: 00-${traceId}-${parent}-01`, 'http://frontend.shop/traced'])) as { backend: number };
    t.is(out.backend, 200);
    const trace = await eventually(async () => { const s = (await spans()).filter((x) => x.traceId === traceId); return s.length >= 4 && s; }, 15_000, 'four spans');
    t.is(trace.length, 4);
    const find = (reporter: string, service: string) => trace.find((s) => s.attrs['nodemesh.reporter'] === reporter && s.attrs['nodemesh.destination_service'] === service)!;
    const c1 = find('source', 'frontend.shop.svc.cluster.local');
    const s1 = find('destination', 'frontend.shop.svc.cluster.local');
    const c2 = find('source', 'api.shop.svc.cluster.local');
    const s2 = find('destination', 'api.shop.svc.cluster.local');
    t.is(c1.parentSpanId, parent, 'the client proxy span is a child of the caller’s');
    t.is(s1.parentSpanId, c1.spanId, 'node-b’s server span is a child of node-a’s client span');
    t.is(c2.parentSpanId, s1.spanId, 'the frontend’s call is a child of its server span');
    t.is(s2.parentSpanId, c2.spanId);
    t.deepEqual([c1.kind, s1.kind, c2.kind, s2.kind], [3, 2, 3, 2], 'CLIENT, SERVER, CLIENT, SERVER');
    t.like(c1.attrs, { 'http.method': 'GET', 'http.status_code': '200', 'nodemesh.source_workload': 'client', 'nodemesh.destination_workload': 'frontend-1', 'nodemesh.destination_principal': `${TD}/frontend`, response_flags: '-', upstream_cluster: 'outbound|80||frontend.shop.svc.cluster.local' });
    t.like(s2.attrs, { 'nodemesh.source_workload': 'frontend-1', 'nodemesh.destination_workload': 'api-1', 'nodemesh.source_principal': `${TD}/frontend` });
    t.is(c1.name, 'frontend.shop.svc.cluster.local:80/*');
    t.true(trace.every((s) => s.status.code === 0));
  });

  test.serial('B3 in yields B3 out; a dead collector fails no request', async (t) => {
    const traceId = '80f198ee56343ba864fe8b2a57d3eff7';
    const out = JSON.parse(await lab.output('shop/client', ['curl', '-sS', '-H', `b3: ${traceId}-e457b5a2e4d86bd1-1`, 'http://frontend.shop/b3'])) as { received: Record<string, string> };
    const b3 = out.received.b3 ?? '';
    t.regex(b3, new RegExp(`^${traceId}-[0-9a-f]{16}-1$`), `the frontend received b3: ${b3}`);
    t.not(b3.split('-')[1], 'e457b5a2e4d86bd1', 'naming the destination proxy’s span');
    t.regex(out.received.traceparent ?? '', new RegExp(`^00-${traceId}-`));
    const trace = await eventually(async () => { const s = (await spans()).filter((x) => x.traceId === traceId); return s.length >= 2 && s; }, 15_000, 'the B3 trace');
    t.true(trace.some((s) => s.parentSpanId === 'e457b5a2e4d86bd1'));

    await lab.output('observability/collector', ['curl', '-sS', '-X', 'POST', 'http://127.0.0.1:4318/exit']);
    const a = lab.node('node-a').agentAdmin;
    const before = sumMetric(await scrape(a), 'nodemesh_agent_spans_dropped_total');
    const r = await client<Load>(lab, 'load', 'http://web.shop/no-collector', '20', '2');
    t.deepEqual(r.status, { '200': 20 }, 'every request answered');
    await eventually(async () => sumMetric(await scrape(a), 'nodemesh_agent_spans_dropped_total', { reason: 'export' }) > before, 15_000, 'the spans dropped and counted');
  });
}
