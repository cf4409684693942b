// Status written back where users look (issue 9), by the leader, through the status
// subresource of the stand-in API server: Gateway API routes get `status.parents[]` with
// Accepted / ResolvedRefs (GAMMA), Istio resources a `nodemesh.io/status` condition and
// `validationMessages` — only when something changed, never a write storm, never by a
// replica that is not the leader.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../control/control-plane.js';
import { CONTROLLER_NAME, ISTIO_CONDITION_TYPE } from '../../control/kube/status-writer.js';
import { KubeApiServerStandIn, type KubeObject } from '../helpers/kube-apiserver.js';
import { eventually } from '../helpers/eventually.js';

type Obj = Record<string, any>;
const FAST_LEASE = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 400 };

async function env(t: ExecutionContext, objects: KubeObject[]): Promise<{ api: KubeApiServerStandIn; replica: (name: string) => Promise<ControlPlane> }> {
  const api = await KubeApiServerStandIn.start();
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-status-'));
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  for (const o of objects) api.apply(o);
  const kubeconfig = api.writeKubeconfig(dir);
  return {
    api,
    replica: async (name) => {
      const cp = await startControlPlane({ grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', processMetrics: false, kubernetes: { kubeconfig, coalesceMs: 5, leaderElection: { ...FAST_LEASE, identity: name } } });
      t.teardown(() => cp.close());
      return cp;
    },
  };
}

const svc = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80 }] } });
const route = (name: string, parent: string, backend: string, extra: Obj = {}): KubeObject => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace: 'shop', generation: 1 },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: parent, port: 80 }], rules: [{ backendRefs: [{ name: backend, port: 80 }] }] },
  ...extra,
});

function conditions(o: KubeObject | undefined, i = 0): Record<string, Obj> {
  const ours = ((o?.status as Obj | undefined)?.parents ?? []).filter((p: Obj) => p.controllerName === CONTROLLER_NAME)[i];
  return Object.fromEntries(((ours?.conditions ?? []) as Obj[]).map((c) => [c.type, c]));
}

function statusWrites(api: KubeApiServerStandIn): string[] {
  return api.requests.filter((r) => r.startsWith('PUT ') && r.endsWith('/status'));
}

test('HTTPRoutes get status.parents[] with Accepted and ResolvedRefs per Service parent; another controller\'s entry is kept', async (t) => {
  const gatewayEntry = { parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'public' }, controllerName: 'istio.io/gateway-controller', conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }] };
  const { api, replica } = await env(t, [
    svc('reviews'),
    svc('ratings'),
    route('good', 'reviews', 'ratings', { status: { parents: [gatewayEntry] } }),
    route('missing-backend', 'reviews', 'nowhere'),
    route('missing-parent', 'nothere', 'ratings'),
  ]);
  await replica('replica-a');
  const good = await eventually(() => conditions(api.get('HTTPRoute', 'shop', 'good')).Accepted && api.get('HTTPRoute', 'shop', 'good'), 20_000, 'status on route good');
  const c = conditions(good);
  t.like(c.Accepted, { status: 'True', reason: 'Accepted', observedGeneration: 1 });
  t.like(c.ResolvedRefs, { status: 'True', reason: 'ResolvedRefs' });
  t.regex(c.Accepted!.lastTransitionTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const parents = (good.status as Obj).parents as Obj[];
  t.deepEqual(parents[0], gatewayEntry, 'the Gateway controller\'s entry is untouched');
  t.deepEqual(parents[1]!.parentRef, { group: '', kind: 'Service', name: 'reviews', port: 80 });

  const mb = conditions(await eventually(() => conditions(api.get('HTTPRoute', 'shop', 'missing-backend')).Accepted && api.get('HTTPRoute', 'shop', 'missing-backend'), 20_000, 'status on missing-backend'));
  t.like(mb.Accepted, { status: 'True' });
  t.like(mb.ResolvedRefs, { status: 'False', reason: 'BackendNotFound' });
  t.regex(mb.ResolvedRefs!.message, /nowhere/);

  const mp = conditions(await eventually(() => conditions(api.get('HTTPRoute', 'shop', 'missing-parent')).Accepted && api.get('HTTPRoute', 'shop', 'missing-parent'), 20_000, 'status on missing-parent'));
  t.like(mp.Accepted, { status: 'False', reason: 'NoMatchingParent' });
  t.regex(mp.Accepted!.message, /spec\.parentRefs\[0\]: Service shop\/nothere not found/);
  // the status subresource changed the status only
  t.deepEqual(api.get('HTTPRoute', 'shop', 'good')!.spec, route('good', 'reviews', 'ratings').spec);
});

test('Istio resources get a nodemesh.io/status condition (Rejected with the field, or Accepted) and the analysis as validationMessages', async (t) => {
  const { api, replica } = await env(t, [
    svc('reviews'),
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'shop' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v3' } }] }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'broken', namespace: 'shop' }, spec: { host: 'reviews', trafficPolicy: { connectionPool: { tcp: { maxConnections: 'many' } } } } },
  ]);
  await replica('replica-a');
  const ours = (o: KubeObject | undefined) => ((o?.status as Obj | undefined)?.conditions ?? []).find((c: Obj) => c.type === ISTIO_CONDITION_TYPE);
  const dr = await eventually(() => ours(api.get('DestinationRule', 'shop', 'broken')), 20_000, 'the DestinationRule\'s condition');
  t.like(dr, { status: 'False', reason: 'Rejected' });
  t.regex(dr.message, /^DestinationRule shop\/broken: field spec\.trafficPolicy\.connectionPool\.tcp\.maxConnections/);
  const vs = await eventually(() => ours(api.get('VirtualService', 'shop', 'reviews')) && api.get('VirtualService', 'shop', 'reviews'), 20_000, 'the VirtualService\'s status');
  t.like(ours(vs), { status: 'True', reason: 'Accepted' });
  t.deepEqual((vs.status as Obj).validationMessages, [{ level: 'ERROR', type: { code: 'IST0101', name: 'ReferencedResourceNotFound' }, documentationUrl: 'https://istio.io/latest/docs/reference/config/analysis/ist0101/' }]);
});

test('no write storm: status is written once per change, not for unrelated changes, and only by the leader', async (t) => {
  const { api, replica } = await env(t, [svc('reviews'), svc('ratings'), route('r', 'reviews', 'nowhere')]);
  const a = await replica('replica-a');
  await eventually(() => a.isLeader(), 20_000, 'replica-a leading');
  const b = await replica('replica-b');
  await eventually(() => conditions(api.get('HTTPRoute', 'shop', 'r')).ResolvedRefs?.status === 'False', 20_000, 'the first status');
  await eventually(() => b.snapshot(), 20_000, 'replica-b synced');
  const first = statusWrites(api).length;
  t.is(first, 1);
  // unrelated churn: pods come and go, a Service changes
  for (let i = 0; i < 5; i++) {
    api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `churn-${i}`, namespace: 'shop' }, spec: { nodeName: 'node-a', containers: [{ name: 'c' }] }, status: { phase: 'Running', podIP: `10.244.1.${20 + i}` } });
    await eventually(() => a.snapshot()?.workloads.some((w) => w.name === `churn-${i}`), 20_000, `churn-${i} applied`);
  }
  await eventually(() => b.snapshot()?.workloads.some((w) => w.name === 'churn-4'), 20_000, 'replica-b caught up');
  t.is(statusWrites(api).length, first, 'no status write for changes that do not change a status');
  // the backend appears: one write, ResolvedRefs turns True
  api.apply(svc('nowhere'));
  await eventually(() => conditions(api.get('HTTPRoute', 'shop', 'r')).ResolvedRefs?.status === 'True', 20_000, 'ResolvedRefs True');
  await eventually(() => a.snapshot()?.services.some((s) => s.name === 'nowhere') && b.snapshot()?.services.some((s) => s.name === 'nowhere'), 20_000, 'both replicas saw it');
  t.is(statusWrites(api).length, first + 1);
  t.is((await b.metrics.statusWrites.get()).values.reduce((n, v) => n + v.value, 0), 0, 'the follower wrote nothing');
  // counted once the answer is read
  await eventually(async () => (await a.metrics.statusWrites.get()).values.find((v) => v.labels.result === 'written')?.value === 2, 10_000, 'the leader\'s two writes counted');
});
