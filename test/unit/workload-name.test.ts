// The workload name Istio reports (source_workload / destination_workload), derived by the
// control plane from a pod's ownerReferences as istiod's GetWorkloadMetaFromPod does
// (control/api/workload-name.ts), carried in the snapshot, and read by the agent's telemetry.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { podWorkloadName } from '../../control/api/workload-name.js';
import { startControlPlane } from '../../control/control-plane.js';
import { workloadName } from '../../agent/telemetry/workload-name.js';
import { tcpLabels } from '../../agent/telemetry/metrics.js';
import { KubeApiServerStandIn, type KubeObject } from '../helpers/kube-apiserver.js';
import { asCluster } from '../helpers/kube-cluster.js';
import { eventually } from '../helpers/eventually.js';

const owned = (name: string, generateName: string, kind: string, owner: string, labels: Record<string, string> = {}) => ({
  name,
  generateName,
  labels,
  ownerReferences: [{ apiVersion: kind === 'Job' ? 'batch/v1' : 'apps/v1', kind, name: owner, controller: true }],
});

test('Istio\'s rule: ReplicaSet → its Deployment, a CronJob\'s Job → the CronJob, StatefulSet/DaemonSet/Job keep their name, a bare pod is itself', (t) => {
  t.is(podWorkloadName(owned('reviews-v1-7d4c8b9f6-x2x9q', 'reviews-v1-7d4c8b9f6-', 'ReplicaSet', 'reviews-v1-7d4c8b9f6', { 'pod-template-hash': '7d4c8b9f6' })), 'reviews-v1');
  // a Deployment name long enough that the pod name was truncated: the labels alone would not find it
  const long = 'a-deployment-whose-name-is-long-enough-to-be-truncated-in-its-pods';
  t.is(podWorkloadName(owned(`${long.slice(0, 58)}xk2pq`, `${long}-5f6d7c8b9-`.slice(0, 58), 'ReplicaSet', `${long}-5f6d7c8b9`, { 'pod-template-hash': '5f6d7c8b9' })), long);
  t.is(podWorkloadName(owned('backup-28904760-abcde', 'backup-28904760-', 'Job', 'backup-28904760')), 'backup');
  t.is(podWorkloadName(owned('migrate-db-q8x2z', 'migrate-db-', 'Job', 'migrate-db')), 'migrate-db');
  t.is(podWorkloadName(owned('redis-0', 'redis-', 'StatefulSet', 'redis', { 'statefulset.kubernetes.io/pod-name': 'redis-0' })), 'redis');
  t.is(podWorkloadName(owned('fluentd-x7k2p', 'fluentd-', 'DaemonSet', 'fluentd')), 'fluentd');
  t.is(podWorkloadName({ name: 'debug', labels: {} }), 'debug');
  // a ReplicaSet not made by a Deployment (no pod-template-hash suffix) is the workload itself
  t.is(podWorkloadName(owned('legacy-rs-8f2kd', 'legacy-rs-', 'ReplicaSet', 'legacy-rs')), 'legacy-rs');
  // istiod's override label wins
  t.is(podWorkloadName({ ...owned('web-5f-abcde', 'web-5f-', 'ReplicaSet', 'web-5f', { 'pod-template-hash': '5f', 'service.istio.io/workload-name': 'storefront' }) }), 'storefront');
  // a name not generated (a pod created by hand with an ownerReference) stays the pod's, as in istiod
  t.is(podWorkloadName({ name: 'handmade', labels: {}, ownerReferences: [{ kind: 'ReplicaSet', name: 'handmade-rs', controller: true }] }), 'handmade');
});

async function snapshotOf(t: ExecutionContext, objects: KubeObject[]) {
  const api = await KubeApiServerStandIn.start();
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-workload-name-'));
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  for (const o of objects) api.apply(o);
  const cp = await startControlPlane({ grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', processMetrics: false, kubernetes: { kubeconfig: api.writeKubeconfig(dir), coalesceMs: 5 } });
  t.teardown(() => cp.close());
  return eventually(() => cp.snapshot(), 20_000, 'the first snapshot');
}

test('a Deployment\'s pods (Pod → ReplicaSet → Deployment) report the Deployment as their workload in the snapshot and in the metrics\' labels', async (t) => {
  const objects = asCluster([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'nodemesh.io/mesh': 'enabled' } } },
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'productpage-v1', namespace: 'shop' }, spec: { replicas: 2, template: { metadata: { labels: { app: 'productpage', version: 'v1' } }, spec: { containers: [{ name: 'c' }] } } } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'debug', namespace: 'shop' }, spec: { containers: [{ name: 'c' }] } },
  ]).filter((o) => o.kind !== 'Deployment');
  const s = await snapshotOf(t, objects);
  const pods = s.workloads.filter((w) => w.name.startsWith('productpage-v1-'));
  t.is(pods.length, 2);
  for (const w of pods) t.is(w.workloadName, 'productpage-v1');
  t.is(s.workloads.find((w) => w.name === 'debug')!.workloadName, 'debug');
  // what istio_requests_total shows: source_workload / destination_workload
  const labels = tcpLabels(pods[0]!, undefined, s.workloads.find((w) => w.name === 'debug')!, '10.244.1.9:80', '-');
  t.is(labels.source_workload, 'productpage-v1');
  t.is(labels.destination_workload, 'debug');
  t.is(workloadName(pods[1]!), 'productpage-v1');
});
