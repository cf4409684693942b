// The telemetry pieces that need no lab: Telemetry filters as the control plane and the agent
// read them, Telemetry resources rejected where Istio's users would err, the per-workload
// resolution of access logging and sampling, Istio's workload names, trace context in and
// out (W3C, B3 single and multi), and the agent's exposition as promtool reads it.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { compileFilter, passes, type FilterAttribute } from '../../control/api/telemetry-filter.js';
import { compileYaml, store } from '../helpers/config-yaml.js';
import { workloadName } from '../../agent/telemetry/workload-name.js';
import { accessLogRule, setTelemetryDefaults, setTelemetryPolicies, tracingRule } from '../../agent/telemetry/telemetry-policy.js';
import { configureTracing, startSpan } from '../../agent/telemetry/tracing.js';
import { registry } from '../../agent/telemetry/metrics.js';
import '../../agent/telemetry/mesh-metrics.js';
import { inboundTelemetry } from '../../agent/telemetry/inbound-requests.js';
import type { Workload } from '../../control/api/snapshot.js';

const req = (o: Partial<Record<FilterAttribute, string | number | boolean>>) => (a: FilterAttribute) => o[a] ?? (a === 'response.code' ? 0 : '');

test('filters: the forms users write for access logs, evaluated as CEL would', (t) => {
  const f = compileFilter('response.code >= 400');
  t.true(passes(f, req({ 'response.code': 503 })));
  t.false(passes(f, req({ 'response.code': 200 })));
  const g = compileFilter('response.code >= 500 || response.flags != "-"');
  t.true(passes(g, req({ 'response.code': 200, 'response.flags': 'UO' })));
  t.false(passes(g, req({ 'response.code': 200, 'response.flags': '-' })));
  const h = compileFilter(`request.method == 'POST' && request.url_path.startsWith("/api")`);
  t.true(passes(h, req({ 'request.method': 'POST', 'request.url_path': '/api/x' })));
  t.false(passes(h, req({ 'request.method': 'GET', 'request.url_path': '/api/x' })));
  t.false(passes(h, req({ 'request.method': 'POST', 'request.url_path': '/web' })));
});

test('filters: what cannot be evaluated exactly is refused, naming what and where', (t) => {
  t.throws(() => compileFilter('response.status >= 400'), { message: /unknown attribute response\.status at column 1/ });
  t.throws(() => compileFilter('response.code >= "400"'), { message: /response\.code is a number, compared with "400"/ });
  t.throws(() => compileFilter('response.code >= 400 &&'), { message: /expected an attribute at the end/ });
  t.throws(() => compileFilter('(response.code >= 400)'), { message: /cannot read the filter at column 1/ });
  t.throws(() => compileFilter('request.method >= "GET"'), { message: /only == and != compare it/ });
});

test('Telemetry resources: a bad filter or sampling percentage is rejected at its field; a good one reaches the snapshot', (t) => {
  const doc = (spec: string) => `apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: logs, namespace: shop}\nspec:\n${spec}\n`;
  const bad = store(doc('  accessLogging: [{filter: {expression: "response.code >== 1"}}]')).statuses[0]!;
  t.is(bad.state, 'Rejected');
  t.regex(bad.message, /field spec\.accessLogging\[0\]\.filter\.expression: /);
  const pct = store(doc('  tracing: [{randomSamplingPercentage: 120}]')).statuses[0]!;
  t.is(pct.state, 'Rejected');
  t.regex(pct.message, /randomSamplingPercentage.*from 0 to 100/);
  const snap = compileYaml(doc('  selector: {matchLabels: {app: web}}\n  accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 400"}}]\n  tracing: [{randomSamplingPercentage: 10}]'));
  t.deepEqual(snap.telemetry, [
    {
      namespace: 'shop',
      name: 'logs',
      selector: { app: 'web' },
      accessLogging: [{ disabled: false, filter: 'response.code >= 400', providers: ['envoy'], mode: 'CLIENT_AND_SERVER' }],
      tracing: [{ disabled: false, randomSamplingPercentage: 10, providers: [], mode: 'CLIENT_AND_SERVER', customTags: [] }],
      metricsOverrides: [],
    },
  ]);
});

test.serial('Telemetry resolution: workload over namespace over mesh; disabled silences; defaults where none speaks', (t) => {
  const base = { selector: {}, accessLogging: [], tracing: [], metricsOverrides: [] };
  const log = (disabled: boolean, filter = '') => [{ disabled, filter, providers: [], mode: 'CLIENT_AND_SERVER' }];
  setTelemetryDefaults({ accessLog: false, samplingPercent: 1 });
  setTelemetryPolicies([
    { ...base, namespace: 'istio-system', name: 'mesh', accessLogging: log(false), tracing: [{ disabled: false, randomSamplingPercentage: 5, providers: [], mode: 'CLIENT_AND_SERVER', customTags: [] }] },
    { ...base, namespace: 'quiet', name: 'off', accessLogging: log(true) },
    { ...base, namespace: 'shop', name: 'web', selector: { app: 'web' }, accessLogging: log(false, 'response.code >= 400') },
  ]);
  const w = (namespace: string, app: string) => ({ namespace, labels: { app } });
  t.truthy(accessLogRule(w('shop', 'client')), 'the mesh default');
  t.is(accessLogRule(w('shop', 'client'))!.filter, undefined);
  t.truthy(accessLogRule(w('shop', 'web'))!.filter, "the workload's filter");
  t.is(accessLogRule(w('quiet', 'x')), undefined, 'disabled for the namespace');
  t.is(tracingRule(w('quiet', 'x')).samplingPercent, 5, 'tracing inherited from the mesh');
  setTelemetryPolicies([]);
  t.is(accessLogRule(w('shop', 'client')), undefined, 'off without a Telemetry, as Istio');
  t.is(tracingRule(undefined).samplingPercent, 1);
});

test("workload names are the owner's, as istiod reports them", (t) => {
  t.is(workloadName({ name: 'web-7c9d8f6b5d-x2k9p', labels: { 'pod-template-hash': '7c9d8f6b5d' } }), 'web');
  t.is(workloadName({ name: 'db-2', labels: { 'statefulset.kubernetes.io/pod-name': 'db-2' } }), 'db');
  t.is(workloadName({ name: 'logs-8fzq2', labels: { 'controller-revision-hash': '6d5f' } }), 'logs');
  t.is(workloadName({ name: 'migrate-abcde', labels: { 'job-name': 'migrate' } }), 'migrate');
  t.is(workloadName({ name: 'client', labels: {} }), 'client', 'a bare pod is its own workload');
});

test.serial('trace context: W3C and B3 in, the same forms out naming this proxy’s span; x-request-id when absent', (t) => {
  configureTracing({ endpoint: 'http://127.0.0.1:9/v1/traces', node: 'n' });
  t.teardown(() => configureTracing({ endpoint: '', node: '' }));
  const h = (o: Record<string, string>) => (n: string): string | undefined => o[n];
  const w3c = startSpan('client', undefined, h({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x-request-id': 'r1' }));
  t.is(w3c.span!.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  t.is(w3c.span!.parentSpanId, '00f067aa0ba902b7');
  t.is(w3c.ops!.set.traceparent, `00-4bf92f3577b34da6a3ce929d0e0e4736-${w3c.span!.spanId}-01`);
  t.false('x-request-id' in w3c.ops!.set, 'the caller’s request id stays');
  const single = startSpan('server', undefined, h({ b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }));
  t.is(single.ops!.set.b3, `80f198ee56343ba864fe8b2a57d3eff7-${single.span!.spanId}-1`);
  t.regex(single.ops!.set['x-request-id']!, /^[0-9a-f-]{36}$/);
  const multi = startSpan('client', undefined, h({ 'x-b3-traceid': '463ac35c9f6413ad', 'x-b3-spanid': 'a2fb4a1d1a96d312', 'x-b3-sampled': '1' }));
  t.like(multi.ops!.set, { 'x-b3-traceid': '0000000000000000463ac35c9f6413ad', 'x-b3-parentspanid': 'a2fb4a1d1a96d312', 'x-b3-sampled': '1' });
  const declined = startSpan('client', undefined, h({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00', 'x-request-id': 'r' }));
  t.is(declined.span, undefined, 'a caller that did not sample is not sampled');
  t.is(declined.ops, undefined, 'and nothing changes');
});

test('the exposition passes promtool but for Istio’s millisecond unit', (t) => {
  const w = { uid: 'shop/web-1', name: 'web-1', namespace: 'shop', node: 'n', ip: '10.0.0.1', serviceAccount: 'web', labels: { app: 'web' }, meshed: true, spiffeId: 'spiffe://cluster.local/ns/shop/sa/web', failOpen: false, workloadName: '' } as Workload;
  inboundTelemetry(undefined, undefined, undefined, w, 'none', 8080).labels(false).record(200, '-', '-', 3, 10, 20);
  return registry.metrics().then((text) => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    t.not(r.error?.message ?? '', 'spawnSync promtool ENOENT', 'promtool is installed');
    t.deepEqual(`${r.stdout}${r.stderr}`.trim().split('\n'), ['istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"']);
  });
});

test.serial('cardinality: 1,000 distinct paths and 100 pods coming and going leave the series count bounded', async (t) => {
  const { labelSet, pruneSeries } = await import('../../agent/telemetry/request-telemetry.js');
  const { requestsTotal } = await import('../../agent/telemetry/metrics.js');
  const svc = { name: 'web', namespace: 'shop', hostname: 'web.shop.svc.cluster.local', clusterIp: '10.96.0.10', ports: [] };
  const pod = (name: string, labels: Record<string, string> = {}) =>
    ({ uid: `shop/${name}`, name, namespace: 'shop', node: 'n', ip: '10.0.0.9', serviceAccount: 'sa', labels, meshed: true, spiffeId: '', failOpen: false, workloadName: '' }) as Workload;
  const client = pod('client');
  const series = () => requestsTotal.get().values.length;
  const before = series();
  // a Deployment's pods come and go (new names, one owner), and the client asks 1,000 paths
  for (let round = 0; round < 50; round++) {
    const web = pod(`web-5d8f7c6b9-${String(round).padStart(5, 'x')}`, { 'pod-template-hash': '5d8f7c6b9', app: 'web' });
    const set = labelSet(client, svc, web, '10.0.0.9:8080', 'http', undefined);
    for (let i = 0; i < 20; i++) set.record(200, '-', '-', 1, 0, 10); // paths are no label: /p{round*20+i}
  }
  t.is(series() - before, 1, 'fifty pods of one Deployment and 1,000 paths: one series');
  // 100 bare pods come and go: each its own workload until the snapshot says it left
  for (let i = 0; i < 100; i++) labelSet(pod(`job-${i}`), svc, undefined, 'web', 'http', undefined).record(200, '-', '-', 1, 0, 0);
  t.is(series() - before, 101);
  pruneSeries(new Set(['shop/client', 'shop/web']));
  t.is(series() - before, 1, 'the series of the pods that left are dropped with the snapshot');
  // a label set held across the prune records into a live series again
  const held = labelSet(client, svc, pod('web-5d8f7c6b9-zzzzz', { 'pod-template-hash': '5d8f7c6b9' }), '10.0.0.9:8080', 'http', undefined);
  held.record(503, '-', '-', 1, 0, 0);
  pruneSeries(new Set(['shop/client', 'shop/web']));
  held.record(503, '-', '-', 1, 0, 0);
  t.is(requestsTotal.get().values.filter((v) => v.labels.response_code === '503').reduce((a, v) => a + v.value, 0), 2);
});
