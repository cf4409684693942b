// The node dashboard and the request tap on the real admin server (127.0.0.1): requests
// recorded through the metrics code the proxy uses, the page loaded in headless Chromium
// (Debian's package) and its DOM read; the page refused to a pod (127.0.0.4) and to the
// metrics token; `nodemesh tap --requests` run as a process with its filters.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startAdminServer } from '../../agent/admin/admin-server.js';
import { countRetries } from '../../agent/telemetry/mesh-metrics.js';
import { tcpLabels } from '../../agent/telemetry/metrics.js';
import { LabelSet } from '../../agent/telemetry/request-telemetry.js';
import { badRequestFilter, publishRequest, requestChannel, requestFilter, type RequestEvent } from '../../agent/telemetry/tap.js';
import type { Workload } from '../../control/api/snapshot.js';
import { dumpDom } from '../../cli/headless-chromium.js';
import { packagePath } from '../../common/paths.js';
import { eventually } from '../helpers/eventually.js';
import { cellValue } from '../helpers/dashboard-dom.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const SVC = 'dash.shop.svc.cluster.local';

const pod = (name: string, app: string): Workload => ({
  uid: `shop/${name}`,
  name,
  namespace: 'shop',
  node: 'node-t',
  ip: '10.0.0.9',
  serviceAccount: app,
  labels: { app, 'pod-template-hash': '5d8f7c9b6d' },
  meshed: true,
  spiffeId: `spiffe://cluster.local/ns/shop/sa/${app}`,
  failOpen: false,
  workloadName: '', // as an older control plane sends: the labels say it
});

async function server(t: import('ava').ExecutionContext) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nm-dash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'metrics-token'), METRICS_TOKEN);
  const admin = await startAdminServer(
    '127.0.0.1',
    0,
    {
      notReady: () => undefined,
      debug: () => ({ node: 'node-t', snapshotVersion: 7, meshedPods: [{ namespace: 'shop', name: 'client-5d8f7c9b6d-abcde', workload: 'client', ip: '10.0.0.9' }] }),
    },
    { isNode: (ip) => ip === '127.0.0.1', metricsTokenFile: path.join(dir, 'metrics-token') },
  );
  t.teardown(() => admin.close());
  return admin.addresses[0]!;
}

function get(address: string, p: string, from: string, token?: string): Promise<{ status: number; body: string }> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    http
      .get({ host, port: Number(port), path: p, localAddress: from, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

test.serial('the dashboard shows the numbers of the requests the proxy recorded, in headless Chromium', async (t) => {
  const address = await server(t);
  // 10 requests answered 200 in 20 ms and 2 answered 503 UO, at the source; 3 retries
  const l = tcpLabels(pod('client-5d8f7c9b6d-abcde', 'client'), { hostname: SVC, name: 'dash', namespace: 'shop' } as never, pod('dash-5d8f7c9b6d-fghij', 'dash'), '10.0.0.10:8080', '-');
  l.request_protocol = 'http';
  l.connection_security_policy = 'mutual_tls';
  const set = new LabelSet(l);
  for (let i = 0; i < 10; i++) set.record(200, '-', '-', 20, 0, 100);
  for (let i = 0; i < 2; i++) set.record(503, '-', 'UO', 1, 0, 0);
  countRetries(SVC, 3, 200);

  const page = await get(address, '/dashboard', '127.0.0.1');
  t.is(page.status, 200);
  t.notRegex(page.body, /<(script|link|img)[^>]+(src|href)="?(https?:)?\/\//i, 'the page loads nothing from elsewhere');

  const dom = await dumpDom(`http://${address}/dashboard`, { budgetMs: 3_000 });
  t.regex(dom, /<body data-state="ready"/);
  t.regex(dom, /id="node">node-t</);
  const row = `data-service="${SVC}" data-reporter="source"`;
  t.is(cellValue(dom, row, 'requests'), '12');
  t.is(cellValue(dom, row, 'errors'), '2');
  t.is(Number(cellValue(dom, row, 'error-percent')).toFixed(1), '16.7');
  const p50 = Number(cellValue(dom, row, 'p50'));
  t.true(p50 > 10 && p50 <= 25, `p50 ${p50} lies in the (10, 25] ms bucket of the 20 ms requests`);
  t.is(cellValue(dom, row, 'retries'), '3');
  t.is(cellValue(dom, `data-source="client.shop" data-destination="${SVC}"`, 'mtls'), 'mutual_tls');
  t.regex(dom, /data-pod="shop\/client-5d8f7c9b6d-abcde"/);
  t.regex(dom, /data-field="meshed-pods"/);
});

test.serial('the dashboard is the admin port’s: a pod is refused, and so is the metrics token', async (t) => {
  const address = await server(t);
  for (const p of ['/', '/dashboard']) {
    t.is((await get(address, p, '127.0.0.4')).status, 401, `${p} from a pod`);
    t.is((await get(address, p, '127.0.0.4', METRICS_TOKEN)).status, 403, `${p} with the metrics token`);
  }
  t.is((await get(address, '/metrics', '127.0.0.4', METRICS_TOKEN)).status, 200);
});

const event = (over: Partial<RequestEvent>): RequestEvent => ({
  event: 'request',
  time: new Date().toISOString(),
  reporter: 'source',
  method: 'GET',
  authority: 'web.shop',
  path: '/hello',
  status: 200,
  grpcStatus: '',
  latencyMs: 1,
  responseFlags: '-',
  sourceWorkload: 'client',
  sourceNamespace: 'shop',
  sourcePod: 'client-1',
  destinationWorkload: 'web',
  destinationNamespace: 'shop',
  destinationPod: 'web-7c9d8f6b5d-x2k9p',
  destinationService: 'web.shop.svc.cluster.local',
  upstream: '10.0.0.3:8080',
  retries: 0,
  ...over,
});

test('tap filters: namespace, to, pod, path, method, status code and class, reporter', (t) => {
  const keeps = (q: string, e: Partial<RequestEvent>) => requestFilter(new URLSearchParams(q))(event(e));
  t.true(keeps('requests&status=5xx', { status: 503 }));
  t.false(keeps('requests&status=5xx', { status: 404 }));
  t.true(keeps('requests&status=404', { status: 404 }));
  t.false(keeps('requests&status=404', { status: 400 }));
  t.true(keeps('requests&pod=web-7c9d8f6b5d-x2k9p', {}));
  t.true(keeps('requests&pod=shop/client-1', {}));
  t.false(keeps('requests&pod=other/client-1', {}));
  t.false(keeps('requests&pod=client-2', {}));
  t.true(keeps('requests&to=web', {}));
  t.false(keeps('requests&to=api', {}));
  t.true(keeps('requests&path=/hel', {}));
  t.false(keeps('requests&path=/api', {}));
  t.true(keeps('requests&method=get', {}));
  t.false(keeps('requests&method=POST', {}));
  t.true(keeps('requests&namespace=shop', {}));
  t.false(keeps('requests&namespace=quiet', {}));
  t.true(keeps('requests&reporter=destination', { reporter: 'destination' }));
  t.false(keeps('requests&reporter=destination', {}));
  t.regex(badRequestFilter(new URLSearchParams('requests&status=5x')) ?? '', /status="5x" is not a status code/);
  t.regex(badRequestFilter(new URLSearchParams('requests&reporter=client')) ?? '', /neither source nor destination/);
  t.regex(badRequestFilter(new URLSearchParams('requests&podd=x')) ?? '', /unknown filter "podd"/);
  t.is(badRequestFilter(new URLSearchParams('requests&status=503&pod=a/b')), undefined);
});

/** `nodemesh tap` as a process; resolves its output once it exits. */
function tapProcess(args: string[]): { done: Promise<{ code: number; stdout: string; stderr: string }> } {
  const p = spawn(process.execPath, [packagePath('bin', 'nodemesh.js'), 'tap', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '';
  let stderr = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
  return { done: new Promise((resolve) => p.once('close', (code) => (clearTimeout(timer), resolve({ code: code ?? -1, stdout, stderr })))) };
}

test.serial('nodemesh tap --requests as a process: the filters reach the agent, -o json, --count', async (t) => {
  const address = await server(t);
  const cli = tapProcess(['--agent', address, '--requests', '--namespace', 'shop', '--status', '5xx', '--path', '/api', '-o', 'json', '--count', '2']);
  await eventually(() => requestChannel.hasSubscribers, 20_000, 'the CLI subscribes');
  const publish = (status: number, p: string, pod: string) =>
    publishRequest(
      { source_workload: 'client', source_workload_namespace: 'shop', destination_workload: 'api', destination_workload_namespace: 'shop', destination_service: 'api.shop.svc.cluster.local' },
      { source: 'client-1', destination: pod },
      { reporter: 'source', startTimeMs: Date.now(), durationMs: 1.25, method: 'GET', authority: 'api.shop', path: p, status, grpcStatus: '', flags: '-', upstreamHost: '10.0.0.4:8080', retries: 0 },
    );
  publish(200, '/api/a', 'api-1'); // not 5xx
  publish(503, '/web', 'api-1'); // not /api
  publish(503, '/api/b', 'api-1');
  publish(500, '/api/c', 'api-2');
  const r = await cli.done;
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as RequestEvent & { agent: string });
  t.deepEqual(
    lines.map((l) => [l.status, l.path, l.destinationPod, l.agent]),
    [
      [503, '/api/b', 'api-1', address],
      [500, '/api/c', 'api-2', address],
    ],
  );
  await eventually(() => !requestChannel.hasSubscribers, 20_000, 'the tap ends with the CLI');

  const bad = await tapProcess(['--agent', address, '--requests', '--status', 'oops']).done;
  t.is(bad.code === 0, false);
  t.regex(bad.stderr, /HTTP 400: tap: status="oops" is not a status code/);
  const usage = await tapProcess(['--agent', address, '--status', '503']).done;
  t.not(usage.code, 0);
  t.regex(usage.stderr, /--status filters requests: add --requests/);
});
