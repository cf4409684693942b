// The Kubernetes source (`nodemesh control --source kubernetes`) against a stand-in API
// server that speaks the real wire protocol (test/helpers/kube-apiserver.ts): client-node's
// KubeConfig, Watch and ListWatch talk HTTPS to it exactly as to a cluster.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../control/control-plane.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { Informer } from '../../control/kube/informer.js';
import { KubeClient, loadKubeConfig } from '../../control/kube/kube-client.js';
import { KUBERNETES_TYPES } from '../../control/source/kubernetes.js';
import { KubeApiServerStandIn, type KubeObject } from '../helpers/kube-apiserver.js';
import { asCluster, syncEndpointSlices } from '../helpers/kube-cluster.js';
import { CONFORMANCE_DIR } from '../helpers/conformance-samples.js';
import { eventually } from '../helpers/eventually.js';
import { packageRoot } from '../../common/paths.js';

const FAST = { coalesceMs: 5, backoff: { baseMs: 20, maxMs: 200 }, absentRetryMs: 100 };

async function standIn(t: ExecutionContext, opts: Parameters<typeof KubeApiServerStandIn.start>[0] = {}): Promise<{ api: KubeApiServerStandIn; kubeconfig: string }> {
  const api = await KubeApiServerStandIn.start(opts);
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-kubeconfig-'));
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { api, kubeconfig: api.writeKubeconfig(dir) };
}

async function kubeControlPlane(t: ExecutionContext, kubeconfig: string, extra: Record<string, unknown> = {}): Promise<ControlPlane> {
  const cp = await startControlPlane({ grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', processMetrics: false, kubernetes: { kubeconfig, ...FAST, ...extra } });
  t.teardown(() => cp.close());
  return cp;
}

function content(s: Snapshot | undefined): unknown {
  if (!s) return undefined;
  const { version: _v, generatedAt: _g, ...rest } = s;
  return rest;
}

function yamlDocs(files: string[]): Record<string, any>[] {
  return files.flatMap((f) => parseAllDocuments(readFileSync(f, 'utf8')).map((d) => d.toJS()).filter((d) => d && typeof d === 'object'));
}

function yamlFilesUnder(d: string): string[] {
  return readdirSync(d)
    .sort()
    .flatMap((n) => {
      const p = path.join(d, n);
      return statSync(p).isDirectory() ? yamlFilesUnder(p) : /\.ya?ml$/.test(n) ? [p] : [];
    });
}

const servedKinds = new Set(KUBERNETES_TYPES.map((t) => t.kind));

const sameSnapshotTest = existsSync(CONFORMANCE_DIR) ? test : process.env.CI === 'true' ? test : test.skip;

sameSnapshotTest('the snapshot from the API server equals the file source\'s for the same objects (the sample app and the conformance YAML)', async (t) => {
  const files = [path.join(packageRoot(), 'deploy/lab/samples/app.yaml'), ...yamlFilesUnder(CONFORMANCE_DIR)];
  const objects = asCluster(yamlDocs(files)).filter((o) => servedKinds.has(o.kind!));
  const { api, kubeconfig } = await standIn(t);
  for (const o of objects) api.apply(o);
  syncEndpointSlices(api);
  t.true(api.list('EndpointSlice').length > 5, 'the stand-in holds the EndpointSlices its controller would');

  // the file source reads the very objects the API server stores (uids, timestamps,
  // defaulted namespaces), without the EndpointSlices: it computes endpoints from selectors
  const stored = KUBERNETES_TYPES.filter((ty) => ty.kind !== 'EndpointSlice').flatMap((ty) => api.list(ty.kind));
  t.is(stored.length, objects.length);
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-same-objects-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'cluster.yaml'), stored.map((o) => stringify(withoutManagedFields(o))).join('---\n'));

  const fromFiles = await startControlPlane({ configDir: dir, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', processMetrics: false, rescanMs: 0 });
  t.teardown(() => fromFiles.close());
  const fromKube = await kubeControlPlane(t, kubeconfig);
  await eventually(() => fromKube.snapshot(), 20_000, 'the first snapshot from the API server');

  const a = fromFiles.snapshot()!;
  const b = fromKube.snapshot()!;
  t.true(a.workloads.length >= 10 && a.services.length >= 10, `a real mesh: ${a.workloads.length} workloads, ${a.services.length} services`);
  t.true(a.services.some((s) => s.ports.some((p) => p.endpoints.length > 0)));
  t.true(a.routing.routes.length > 0 && a.security.workloads.length > 0);
  t.deepEqual(content(b), content(a));
  // the same verdict on every object (the cluster also holds its EndpointSlices, all accepted)
  const verdicts = (cp: ControlPlane) => cp.status().resources.filter((r) => r.kind !== 'EndpointSlice').map((r) => `${r.resource} ${r.state}`).sort();
  t.deepEqual(verdicts(fromKube), verdicts(fromFiles));
  t.is(fromKube.status().summary.rejected, 0);
});

test('a rejected object names the source, the resource and the field (no file, no line), is counted, and its last good version stays', async (t) => {
  const { api, kubeconfig } = await standIn(t);
  api.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });
  const cp = await kubeControlPlane(t, kubeconfig);
  await eventually(() => cp.snapshot()?.services.some((s) => s.name === 'web'), 20_000, 'web in the snapshot');
  const web = api.get('Service', 'shop', 'web')!;
  api.apply({ ...web, spec: { selector: { app: 'web' }, ports: [{ port: 70000 }] } });
  const st = await eventually(() => cp.status().resources.find((r) => r.resource === 'Service shop/web' && r.state === 'Rejected'), 20_000, 'the rejection');
  t.regex(st.message, /^kubernetes: Service shop\/web: field spec\.ports\[0\]\.port: /);
  t.true(st.servingLastGood);
  t.is(cp.snapshot()!.services.find((s) => s.name === 'web')!.ports[0]!.port, 80);
  t.regex(await cp.metrics.registry.getSingleMetricAsString('nodemesh_config_errors_total'), /kind="Service"} 1/);
});

test('a pod\'s mesh annotation changed through the API meshes and unmeshes it live', async (t) => {
  const { api, kubeconfig } = await standIn(t);
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  const pod = api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'shop' }, spec: { nodeName: 'node-a', containers: [{ name: 'c' }] }, status: { phase: 'Running', podIP: '10.244.1.5' } });
  const cp = await kubeControlPlane(t, kubeconfig);
  const meshed = () => cp.snapshot()?.workloads.find((w) => w.name === 'web-1')?.meshed;
  await eventually(() => meshed() === false, 20_000, 'web-1 unmeshed');
  api.apply({ ...pod, metadata: { ...pod.metadata, annotations: { 'nodemesh.io/mesh': 'enabled' } } });
  await eventually(() => meshed() === true, 20_000, 'web-1 meshed');
  const ns = api.get('Namespace', undefined, 'shop')!;
  api.apply({ ...ns, metadata: { ...ns.metadata, labels: { 'nodemesh.io/mesh': 'enabled' } } });
  const p2 = api.get('Pod', 'shop', 'web-1')!;
  api.apply({ ...p2, metadata: { ...p2.metadata, annotations: { 'nodemesh.io/mesh': 'disabled' } } });
  t.true(await eventually(() => meshed() === false, 20_000, 'the pod annotation "disabled" wins over the namespace label'));
});

test('endpoints come from EndpointSlices: a Service without a selector, and terminating endpoints when none is ready', async (t) => {
  const { api, kubeconfig } = await standIn(t);
  api.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'default' }, spec: { clusterIP: '10.96.0.50', ports: [{ name: 'pg', port: 5432 }] } });
  const slice = api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'db-manual', namespace: 'default', labels: { 'kubernetes.io/service-name': 'db' } },
    addressType: 'IPv4',
    ports: [{ name: 'pg', port: 15432, protocol: 'TCP' }],
    endpoints: [
      { addresses: ['192.168.5.1'], conditions: { ready: true } },
      { addresses: ['192.168.5.2'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'node-b' },
    ],
  });
  const cp = await kubeControlPlane(t, kubeconfig);
  const eps = () => cp.snapshot()?.services.find((s) => s.name === 'db')?.ports[0]?.endpoints.map((e) => `${e.ip}:${e.port}`);
  await eventually(() => eps()?.join() === '192.168.5.1:15432', 20_000, 'the ready endpoint only');
  api.apply({ ...slice, endpoints: [(slice.endpoints as unknown[])[1]] });
  t.true(await eventually(() => eps()?.join() === '192.168.5.2:15432', 20_000, 'the serving terminating endpoint, as kube-proxy falls back to it'));
  t.is(cp.snapshot()!.services.find((s) => s.name === 'db')!.ports[0]!.endpoints[0]!.node, 'node-b');
});

test('Istio and Gateway API kinds whose CRDs are not installed are skipped with one log line each, and picked up when they appear', async (t) => {
  const { api, kubeconfig } = await standIn(t, { installCrds: false });
  api.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } });
  const cp = await kubeControlPlane(t, kubeconfig);
  await eventually(() => cp.snapshot(), 20_000, 'a snapshot without the CRDs');
  const absent = cp.kubernetesTypes()!.filter((s) => s.state === 'absent').map((s) => s.kind).sort();
  t.deepEqual(absent, KUBERNETES_TYPES.filter((ty) => ty.crd).map((ty) => ty.kind).sort());
  // one "absent" per kind, however often it is retried meanwhile
  await eventually(() => api.counters.lists.size === 0 || api.requests.filter((r) => r.includes('/virtualservices')).length >= 3, 20_000, 'retries');
  t.regex(await cp.metrics.registry.getSingleMetricAsString('nodemesh_kube_watch_events_total'), /kind="VirtualService",event="absent"} 1/);

  api.installCrd('VirtualService');
  api.apply({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'default' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }], timeout: '3s' }] } });
  await eventually(() => cp.snapshot()?.routing.routes.some((r) => r.host === 'reviews.default.svc.cluster.local'), 20_000, 'the VirtualService compiled once its CRD appeared');
  t.is(cp.kubernetesTypes()!.find((s) => s.kind === 'VirtualService')!.state, 'synced');
});

// ---- the informer's protocol, one resource type ----

interface Recorded {
  events: string[];
  informer: Informer;
  synced: Promise<void>;
}

function podInformer(t: ExecutionContext, kubeconfig: string, opts: { pageSize?: number } = {}): Recorded {
  const { kc } = loadKubeConfig({ kubeconfig });
  const events: string[] = [];
  let synced!: () => void;
  const done = new Promise<void>((r) => (synced = r));
  const name = (o: KubernetesObject) => `${o.metadata!.name}@${o.metadata!.resourceVersion}`;
  const informer = new Informer({
    type: KUBERNETES_TYPES.find((ty) => ty.kind === 'Pod')!,
    client: new KubeClient(kc),
    onUpsert: (o) => events.push(`upsert ${name(o)}`),
    onDelete: (o) => events.push(`delete ${o.metadata!.name}`),
    onSynced: synced,
    backoff: { baseMs: 20, maxMs: 200 },
    ...opts,
  });
  informer.start();
  t.teardown(() => informer.stop());
  return { events, informer, synced: done };
}

const pod = (name: string, extra: Record<string, unknown> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', ...extra }, spec: { containers: [] } });

test('informer: lists in pages, then watches from the list\'s resourceVersion asking for bookmarks', async (t) => {
  const { api, kubeconfig } = await standIn(t);
  for (const n of ['a', 'b', 'c', 'd', 'e']) api.apply(pod(n));
  const r = podInformer(t, kubeconfig, { pageSize: 2 });
  await r.synced;
  t.deepEqual(r.events.map((e) => e.split('@')[0]), ['upsert a', 'upsert b', 'upsert c', 'upsert d', 'upsert e']);
  const pages = api.requests.filter((q) => q.startsWith('GET /api/v1/pods?limit=2'));
  t.is(pages.length, 3, 'five pods in pages of two');
  await eventually(() => api.openWatches('Pod') === 1, 20_000, 'the watch');
  const watch = new URL(api.requests.find((q) => q.includes('watch=true'))!.slice(4), 'https://x');
  t.is(watch.searchParams.get('allowWatchBookmarks'), 'true');
  t.is(watch.searchParams.get('resourceVersion'), String(Math.max(...api.list('Pod').map((p) => Number(p.metadata.resourceVersion)))));
  t.true(Number(watch.searchParams.get('timeoutSeconds')) >= 300);
  const f = api.apply(pod('f'));
  await eventually(() => r.events.includes(`upsert f@${f.metadata.resourceVersion}`), 20_000, 'f through the watch');
});

test('informer: 410 Gone relists without applying any event twice (changed once, added once, deleted once, the rest not again)', async (t) => {
  const { api, kubeconfig } = await standIn(t);
  for (const n of ['keep', 'change', 'gone']) api.apply(pod(n));
  const r = podInformer(t, kubeconfig);
  await r.synced;
  await eventually(() => api.openWatches('Pod') === 1, 20_000, 'the watch');
  // the informer misses these (its stream is cut), and the history it would resume from is compacted
  api.dropWatches('Pod');
  const before = r.events.length;
  const changed = api.apply({ ...api.get('Pod', 'default', 'change')!, spec: { containers: [{ name: 'new' }] } });
  const added = api.apply(pod('new'));
  api.remove('Pod', 'default', 'gone');
  api.compact('Pod');
  await eventually(() => r.events.includes('delete gone') && r.events.some((e) => e.startsWith('upsert new@')) && r.events.includes(`upsert change@${changed.metadata.resourceVersion}`), 10_000, 'the relist');
  t.true(api.counters.gone >= 1, 'the resumed watch was answered 410 Gone');
  t.is(api.counters.lists.get('Pod'), 2, 'one list, one relist');
  await eventually(() => api.openWatches('Pod') === 1, 20_000, 'watching again');
  t.deepEqual(r.events.slice(before).sort(), [`upsert change@${changed.metadata.resourceVersion}`, 'delete gone', `upsert new@${added.metadata.resourceVersion}`].sort());
});

test('informer: a watch dropped mid-stream resumes from the last resourceVersion, without a relist and without repeats', async (t) => {
  const { api, kubeconfig } = await standIn(t);
  api.apply(pod('a'));
  const r = podInformer(t, kubeconfig);
  await r.synced;
  await eventually(() => api.openWatches('Pod') === 1, 20_000, 'the watch');
  const b = api.apply(pod('b'));
  await eventually(() => r.events.includes(`upsert b@${b.metadata.resourceVersion}`), 20_000, 'b');
  t.is(api.dropWatches('Pod'), 1);
  const c = api.apply(pod('c'));
  await eventually(() => r.events.includes(`upsert c@${c.metadata.resourceVersion}`), 10_000, 'c after the drop');
  t.is(api.counters.lists.get('Pod'), 1, 'no relist');
  t.is(api.counters.gone, 0);
  t.deepEqual(r.events.map((e) => e.split('@')[0]), ['upsert a', 'upsert b', 'upsert c']);
  const resumed = api.requests.filter((q) => q.includes('watch=true')).at(-1)!;
  t.true(Number(new URL(resumed.slice(4), 'https://x').searchParams.get('resourceVersion')) >= Number(b.metadata.resourceVersion));
});

test('informer: a bookmark moves the resourceVersion on, so a quiet type resumes after compaction without a relist', async (t) => {
  const { api, kubeconfig } = await standIn(t);
  api.apply(pod('a'));
  const r = podInformer(t, kubeconfig);
  await r.synced;
  await eventually(() => api.openWatches('Pod') === 1, 20_000, 'the watch');
  // other kinds move the cluster's resourceVersion; Pods stay quiet
  for (let i = 0; i < 5; i++) api.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: `sa-${i}`, namespace: 'default' } });
  const latest = String(Math.max(...api.list('ServiceAccount').map((s) => Number(s.metadata.resourceVersion))));
  t.not(r.informer.resourceVersion(), latest);
  api.bookmark();
  await eventually(() => r.informer.resourceVersion() === latest, 20_000, 'the bookmark read');
  api.compact('Pod');
  api.dropWatches('Pod');
  await eventually(() => api.requests.filter((q) => q.includes('watch=true')).length === 2 && api.openWatches('Pod') === 1, 10_000, 'the resumed watch');
  const resumed = new URL(api.requests.filter((q) => q.includes('watch=true')).at(-1)!.slice(4), 'https://x');
  t.is(resumed.searchParams.get('resourceVersion'), latest);
  t.is(api.counters.gone, 0);
  t.is(api.counters.lists.get('Pod'), 1);
});

test('informer: a failing API server is retried with backoff until the list succeeds', async (t) => {
  const { api, kubeconfig } = await standIn(t);
  api.apply(pod('a'));
  api.failNext = 3;
  const r = podInformer(t, kubeconfig);
  await r.synced;
  t.is(api.failNext, 0);
  t.deepEqual(r.events.map((e) => e.split('@')[0]), ['upsert a']);
  t.is(r.informer.state, 'synced');
});

function withoutManagedFields(o: KubeObject): KubeObject {
  const { managedFields: _m, ...metadata } = o.metadata;
  return { ...o, metadata: metadata as KubeObject['metadata'] };
}
