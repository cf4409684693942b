// The Grafana dashboards of deploy/grafana/ read only what nodemesh exports: each is valid
// JSON, and every metric name of every PromQL expression (panels and variables) is one that a
// scrape of the agent's registry or the control plane's defines. And Istio's stock
// dashboards work unchanged: the request and TCP metric names and the labels they filter by
// (istio/istio manifests/addons/dashboards: istio-service-, istio-workload-, istio-mesh-dashboard
// and lib/queries.libsonnet) are what the agent exports, from both reporters.
import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { createCaMetrics } from '../../control/ca/metrics.js';
import { createControlMetrics } from '../../control/control-metrics.js';
import { collectAgentProcessMetrics, registry, tcpConnectionsClosed, tcpConnectionsOpened, tcpLabels, tcpReceivedBytes, tcpSentBytes } from '../../agent/telemetry/metrics.js';
import '../../agent/telemetry/mesh-metrics.js';
import { LabelSet } from '../../agent/telemetry/request-telemetry.js';
import { parsePromText } from '../../cli/prom-text.js';
import { packagePath } from '../../common/paths.js';
import { exportedNames, grafanaExpressions, promqlMetricNames } from '../helpers/promql.js';

const DIR = packagePath('deploy', 'grafana');

/** The names Istio's stock service, workload and mesh dashboards read for traffic. */
const ISTIO_DASHBOARD_METRICS = [
  'istio_requests_total',
  'istio_request_duration_milliseconds_bucket',
  'istio_request_bytes_bucket',
  'istio_response_bytes_bucket',
  'istio_tcp_sent_bytes_total',
  'istio_tcp_received_bytes_total',
  'istio_tcp_connections_opened_total',
  'istio_tcp_connections_closed_total',
];
/** The labels their panels and variables filter and group by. */
const ISTIO_DASHBOARD_LABELS = [
  'reporter',
  'connection_security_policy',
  'destination_service',
  'destination_workload',
  'destination_workload_namespace',
  'source_workload',
  'source_workload_namespace',
  'destination_canonical_service',
];

test('promqlMetricNames: selectors, not functions, labels, keywords, strings or variables', (t) => {
  t.deepEqual(
    [...promqlMetricNames('histogram_quantile(0.99, sum by (le, destination_service) (rate(istio_request_duration_milliseconds_bucket{reporter="source", instance=~"$instance"}[$__rate_interval])))')],
    ['istio_request_duration_milliseconds_bucket'],
  );
  t.deepEqual([...promqlMetricNames('sum(a_total) / on(x) group_left(y) b offset 5m or vector(0) and c > bool 1e3')].sort(), ['a_total', 'b', 'c']);
  t.deepEqual([...promqlMetricNames('label_values(nodemesh_agent_meshed_pods, instance)')], ['nodemesh_agent_meshed_pods']);
});

async function scrapes(): Promise<{ agent: string; control: string }> {
  // one request and one TCP connection, recorded as the proxy records them, so every series kind appears
  const l = tcpLabels(undefined, undefined, undefined, '10.0.0.1:80', '-');
  new LabelSet({ ...l, request_protocol: 'http' }).record(200, '-', '-', 1, 0, 0);
  for (const c of [tcpConnectionsOpened, tcpConnectionsClosed, tcpSentBytes, tcpReceivedBytes]) c.inc({ ...l });
  // a serving agent has its process metrics too (it loads them once the proxy serves)
  await collectAgentProcessMetrics();
  const control = createControlMetrics({ processMetrics: true });
  createCaMetrics(control.registry);
  return { agent: await registry.metrics(), control: await control.registry.metrics() };
}

test('every dashboard in deploy/grafana is valid JSON whose PromQL reads only names nodemesh exports', async (t) => {
  const files = (await readdir(DIR)).filter((f) => f.endsWith('.json'));
  t.true(files.length > 0);
  const { agent, control } = await scrapes();
  const exported = new Set([...exportedNames(agent), ...exportedNames(control)]);
  for (const f of files) {
    const dashboard = JSON.parse(await readFile(`${DIR}/${f}`, 'utf8')) as { title?: unknown; uid?: unknown; panels?: unknown[] };
    t.is(typeof dashboard.title, 'string', `${f}: a title`);
    t.is(typeof dashboard.uid, 'string', `${f}: a uid`);
    const exprs = grafanaExpressions(dashboard);
    t.true(exprs.length >= 10, `${f}: its panels have queries`);
    for (const e of exprs) {
      const names = promqlMetricNames(e);
      t.true(names.size > 0, `${f}: ${e} reads a metric`);
      for (const n of names) t.true(exported.has(n), `${f}: ${n} (in ${e}) is not a name nodemesh exports`);
    }
    // what the issue asks the dashboard to show
    const all = new Set(exprs.flatMap((e) => [...promqlMetricNames(e)]));
    for (const n of [
      'nodemesh_agent_meshed_pods',
      'nodemesh_agent_sidecar_memory_saved_bytes',
      'nodemesh_agent_process_resident_memory_bytes',
      'nodemesh_agent_process_cpu_seconds_total',
      'nodemesh_agent_retries_total',
      'nodemesh_agent_circuit_breaker_overflow_total',
      'nodemesh_agent_outlier_ejections_total',
      'nodemesh_agent_hosts_ejected',
    ])
      t.true(all.has(n), `${f} shows ${n}`);
  }
});

test('Istio’s stock dashboards: the request and TCP names and labels they read are the agent’s', async (t) => {
  const { agent } = await scrapes();
  const exported = exportedNames(agent);
  for (const n of ISTIO_DASHBOARD_METRICS) t.true(exported.has(n), n);
  const samples = parsePromText(agent);
  for (const n of ISTIO_DASHBOARD_METRICS) {
    const s = samples.find((x) => x.name === n);
    t.truthy(s, `${n} has a sample`);
    for (const l of ISTIO_DASHBOARD_LABELS) t.true(l in s!.labels, `${n} has label ${l}`);
  }
});
