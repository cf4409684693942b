// Telemetry resources' metrics overrides, tracing customTags and match.mode, applied: the
// control plane refuses what nodemesh cannot honour at its field (tagOverrides UPSERT, a
// label a metric lacks, customMetric, two kinds in one custom tag, a bad mode) and compiles
// the rest; the agent resolves them per workload and reporter (CLIENT = source, SERVER =
// destination; overrides merged mesh → namespace → workload); the request and TCP metrics
// are recorded without a disabled metric and with removed labels empty (absent to
// Prometheus); custom tags read the literal, the request header or the environment.
import test from 'ava';
import { PassThrough } from 'node:stream';
import { compileYaml, store } from '../helpers/config-yaml.js';
import { accessLogRule, metricsRule, setTelemetryDefaults, setTelemetryPolicies, tracingRule } from '../../agent/telemetry/telemetry-policy.js';
import { customTagValue } from '../../agent/telemetry/tracing.js';
import { registry, tcpLabelsDestination } from '../../agent/telemetry/metrics.js';
import { LabelSet } from '../../agent/telemetry/request-telemetry.js';
import { FlowSet, trackUntilClose } from '../../agent/transport/flow.js';
import { parsePromText } from '../../cli/prom-text.js';
import type { TelemetryPolicy } from '../../control/api/snapshot-telemetry.js';
import type { Workload } from '../../control/api/snapshot.js';

const doc = (spec: string, ns = 'shop', name = 't') => `apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n${spec}\n`;
const rejected = (spec: string) => {
  const s = store(doc(spec)).statuses[0]!;
  return s.state === 'Rejected' ? s.message : `not rejected: ${s.state}`;
};

test('validation: what nodemesh cannot honour is refused at its field, never ignored', (t) => {
  t.regex(rejected('  metrics: [{overrides: [{tagOverrides: {team: {value: "request.host"}}}]}]'), /spec\.metrics\[0\]\.overrides\[0\]\.tagOverrides\.team.*UPSERT \(the default\) is not supported/);
  t.regex(rejected('  metrics: [{overrides: [{match: {metric: TCP_SENT_BYTES}, tagOverrides: {response_code: {operation: REMOVE}}}]}]'), /tagOverrides\.response_code.*TCP_SENT_BYTES has no label response_code/);
  t.regex(rejected('  metrics: [{overrides: [{match: {customMetric: my_metric}, disabled: true}]}]'), /match\.customMetric.*standard metrics only/);
  t.regex(rejected('  metrics: [{overrides: [{match: {metric: REQUEST_COUNTS}}]}]'), /match\.metric/);
  t.regex(rejected('  tracing: [{customTags: {team: {literal: {value: a}, header: {name: x-team}}}}]'), /customTags\.team.*exactly one of literal, header, environment/);
  t.regex(rejected('  tracing: [{customTags: {team: {header: {defaultValue: x}}}}]'), /customTags\.team\.header\.name/);
  t.regex(rejected('  accessLogging: [{match: {mode: BOTH}}]'), /accessLogging\[0\]\.match\.mode/);
  const notes = store(doc('  metrics: [{reportingInterval: 5s, overrides: [{match: {metric: GRPC_REQUEST_MESSAGES}, disabled: true}]}]')).statuses[0]!;
  t.is(notes.state, 'Accepted');
  t.regex(JSON.stringify(notes), /gRPC message counts/, 'what has nothing to apply to is said in the status');
});

test('compiled: overrides, custom tags and modes reach the snapshot as written', (t) => {
  const snap = compileYaml(
    doc(
      [
        '  selector: {matchLabels: {app: web}}',
        '  accessLogging: [{match: {mode: SERVER}, filter: {expression: "response.code >= 500"}}, {match: {mode: CLIENT}, disabled: true}]',
        '  tracing: [{match: {mode: CLIENT}, randomSamplingPercentage: 50, customTags: {team: {literal: {value: shop}}, user: {header: {name: X-User, defaultValue: anon}}, zone: {environment: {name: ZONE}}}}]',
        '  metrics: [{providers: [{name: prometheus}], overrides: [{match: {metric: REQUEST_COUNT, mode: SERVER}, disabled: true}, {tagOverrides: {source_principal: {operation: REMOVE}}}]}]',
      ].join('\n'),
    ),
  );
  const p = snap.telemetry![0]!;
  t.deepEqual(p.accessLogging.map((e) => [e.mode, e.disabled, e.filter]), [
    ['SERVER', false, 'response.code >= 500'],
    ['CLIENT', true, ''],
  ]);
  t.deepEqual(p.tracing[0]!.customTags, [
    { name: 'team', kind: 'literal', value: 'shop', defaultValue: '' },
    { name: 'user', kind: 'header', value: 'x-user', defaultValue: 'anon' },
    { name: 'zone', kind: 'environment', value: 'ZONE', defaultValue: '' },
  ]);
  t.deepEqual(p.metricsOverrides, [
    { metric: 'REQUEST_COUNT', mode: 'SERVER', disabled: true, removeTags: [] },
    { metric: 'ALL_METRICS', mode: 'CLIENT_AND_SERVER', removeTags: ['source_principal'] },
  ]);
});

const policy = (namespace: string, name: string, o: Partial<TelemetryPolicy>): TelemetryPolicy => ({ namespace, name, selector: {}, accessLogging: [], tracing: [], metricsOverrides: [], ...o });
const web = { namespace: 'shop', labels: { app: 'web' } };
const client = { namespace: 'shop', labels: { app: 'client' } };

test.serial('resolution per reporter: CLIENT is the source, SERVER the destination; overrides merge mesh → namespace → workload', (t) => {
  setTelemetryDefaults({ accessLog: false, samplingPercent: 1 });
  setTelemetryPolicies([
    policy('istio-system', 'mesh', {
      accessLogging: [{ disabled: false, filter: '', providers: [], mode: 'CLIENT_AND_SERVER' }],
      metricsOverrides: [{ metric: 'ALL_METRICS', mode: 'CLIENT_AND_SERVER', disabled: true, removeTags: [] }],
    }),
    policy('shop', 'ns', { metricsOverrides: [{ metric: 'REQUEST_COUNT', mode: 'CLIENT_AND_SERVER', disabled: false, removeTags: ['source_principal'] }] }),
    policy('shop', 'web', {
      selector: { app: 'web' },
      accessLogging: [{ disabled: true, filter: '', providers: [], mode: 'SERVER' }],
      tracing: [{ disabled: false, randomSamplingPercentage: 50, providers: [], mode: 'CLIENT', customTags: [{ name: 'team', kind: 'literal', value: 'shop', defaultValue: '' }] }],
      metricsOverrides: [{ metric: 'REQUEST_DURATION', mode: 'SERVER', disabled: false, removeTags: [] }],
    }),
  ]);
  t.is(accessLogRule(web, 'destination'), undefined, 'SERVER entry: web logs nothing as the destination');
  t.truthy(accessLogRule(web, 'source'), 'as the source the mesh default speaks');
  t.is(tracingRule(web, 'source').samplingPercent, 50);
  t.deepEqual(tracingRule(web, 'source').customTags.map((c) => c.name), ['team']);
  t.is(tracingRule(web, 'destination').samplingPercent, 1, 'the CLIENT entry does not speak for the server side');
  const server = metricsRule(web, 'destination');
  t.false(server.disabled.has('REQUEST_COUNT'), 'the namespace re-enabled it');
  t.false(server.disabled.has('REQUEST_DURATION'), 'the workload re-enabled it at SERVER');
  t.true(server.disabled.has('TCP_SENT_BYTES'), 'the mesh disabled the rest');
  t.deepEqual(server.removed.get('REQUEST_COUNT'), ['source_principal']);
  t.true(metricsRule(client, 'source').disabled.has('REQUEST_DURATION'));
  setTelemetryPolicies([]);
});

const pod = (name: string, app: string): Workload => ({
  uid: `shop/${name}`,
  name,
  namespace: 'shop',
  node: 'n',
  ip: '10.0.0.5',
  serviceAccount: app,
  labels: { app },
  meshed: true,
  spiffeId: `spiffe://cluster.local/ns/shop/sa/${app}`,
  failOpen: false,
  workloadName: '', // as an older control plane sends: the labels say it
});

test.serial('recorded: a disabled metric has no series, a removed label is empty; the other reporter is untouched', async (t) => {
  const dst = pod('ovr-web-1', 'ovr-web');
  const src = pod('ovr-client-1', 'ovr-client');
  setTelemetryPolicies([
    policy('shop', 'ovr', {
      selector: { app: 'ovr-web' },
      metricsOverrides: [
        { metric: 'REQUEST_COUNT', mode: 'SERVER', disabled: true, removeTags: [] },
        { metric: 'ALL_METRICS', mode: 'SERVER', removeTags: ['source_principal'] },
      ],
    }),
  ]);
  const labels = tcpLabelsDestination(src, src.spiffeId, undefined, dst, 'mutual_tls', '-');
  new LabelSet({ ...labels, request_protocol: 'http' }, dst).record(200, '-', '-', 3, 10, 20);
  // the same workload as a client (reporter source): no override applies
  new LabelSet({ ...labels, reporter: 'source', source_workload: 'ovr-web-1' }, dst).record(200, '-', '-', 3, 10, 20);
  const set = new FlowSet();
  const stream = new PassThrough();
  const flow = trackUntilClose(set, stream, { ...labels }, 'passing', dst);
  flow.close();
  set.close();

  const samples = parsePromText(await registry.metrics());
  const mine = (name: string, reporter: string) => samples.filter((s) => s.name === name && s.labels.destination_workload === 'ovr-web-1' && s.labels.reporter === reporter);
  t.is(mine('istio_requests_total', 'destination').length, 0, 'REQUEST_COUNT disabled at SERVER');
  t.is(mine('istio_requests_total', 'source').length, 1, 'the source reporter still counts');
  const duration = mine('istio_request_duration_milliseconds_count', 'destination');
  t.is(duration.length, 1);
  t.is(duration[0]!.labels.source_principal, '', 'source_principal removed');
  t.is(mine('istio_request_duration_milliseconds_count', 'source')[0]!.labels.source_principal, src.spiffeId);
  const tcp = mine('istio_tcp_connections_opened_total', 'destination');
  t.is(tcp.length, 1);
  t.is(tcp[0]!.labels.source_principal, '', 'the TCP metrics too');
  setTelemetryPolicies([]);
});

test('custom tags: a literal, a request header or the environment, else the default', (t) => {
  const r = { header: (n: string) => (n === 'x-user' ? 'alice' : undefined) };
  process.env.NODEMESH_TEST_ZONE = 'zone-a';
  t.is(customTagValue({ name: 'team', kind: 'literal', value: 'shop', defaultValue: '' }, r), 'shop');
  t.is(customTagValue({ name: 'user', kind: 'header', value: 'x-user', defaultValue: 'anon' }, r), 'alice');
  t.is(customTagValue({ name: 'user', kind: 'header', value: 'x-other', defaultValue: 'anon' }, r), 'anon');
  t.is(customTagValue({ name: 'zone', kind: 'environment', value: 'NODEMESH_TEST_ZONE', defaultValue: 'none' }, r), 'zone-a');
  t.is(customTagValue({ name: 'zone', kind: 'environment', value: 'NODEMESH_TEST_UNSET', defaultValue: 'none' }, r), 'none');
  delete process.env.NODEMESH_TEST_ZONE;
});
