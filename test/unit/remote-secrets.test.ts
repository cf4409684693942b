// Istio's remote secrets (issue 13), against two (or three) stand-in API servers speaking the
// real wire protocol: a control plane on cluster A watches the Secrets of its namespace
// labelled istio/multiCluster=true; each key names a remote cluster and holds a kubeconfig;
// a read-only Kubernetes source over that cluster's API server feeds the remote-cluster merge.
// The Secret is the one `nodemesh create-remote-secret` prints for cluster B (the reader's
// token, B's CA and server). Adding, changing and deleting it adds, replaces and removes the
// cluster live (its watches end), the local state untouched; a bad value or an unreachable
// server is an error naming the Secret and key, counted, the other clusters unaffected.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../control/control-plane.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { checkKubeconfig, readRemoteSecrets } from '../../control/kube/remote-secrets.js';
import { createRemoteSecret, READER_TOKEN_SECRET } from '../../cli/create-remote-secret.js';
import { formatConfigStatus } from '../../cli/config-status.js';
import { KubeApiServerStandIn, type KubeObject } from '../helpers/kube-apiserver.js';
import { syncEndpointSlices } from '../helpers/kube-cluster.js';
import { eventually } from '../helpers/eventually.js';

const FAST = { coalesceMs: 5, backoff: { baseMs: 20, maxMs: 200 }, absentRetryMs: 100 };
const NS = 'nodemesh-system';
const b64 = (s: string) => Buffer.from(s).toString('base64');

async function standIn(t: ExecutionContext): Promise<{ api: KubeApiServerStandIn; kubeconfig: string }> {
  const api = await KubeApiServerStandIn.start();
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-remote-secret-'));
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { api, kubeconfig: api.writeKubeconfig(dir) };
}

const pod = (name: string, ip: string, node: string, labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'demo', labels },
  spec: { nodeName: node, serviceAccountName: 'default', containers: [{ name: 'c' }] },
  status: { phase: 'Running', podIP: ip, hostIP: '172.19.0.2' },
});
const service = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
const node = (name: string, ip: string): KubeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });

/** A cluster holding backend (one pod `backendPod` at `ip`), its system namespace labelled with `network`. */
function fillCluster(api: KubeApiServerStandIn, o: { network?: string; backendPod: string; ip: string; node: string; nodeIp: string }): void {
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: o.network ? { 'topology.istio.io/network': o.network } : {} } });
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
  api.apply(node(o.node, o.nodeIp));
  api.apply(service('backend'));
  api.apply(pod(o.backendPod, o.ip, o.node, { app: 'backend' }));
  syncEndpointSlices(api);
}

/** The reader's token Secret as the token controller fills it, and the token accepted by the server. */
function installReader(api: KubeApiServerStandIn, token: string): void {
  api.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: READER_TOKEN_SECRET, namespace: NS, annotations: { 'kubernetes.io/service-account.name': 'nodemesh-reader' } }, type: 'kubernetes.io/service-account-token', data: { token: b64(token), 'ca.crt': b64(api.caPem) } } as KubeObject);
  api.acceptBearer(token);
}

/** What `kubectl apply -f` of the printed YAML leaves in the API server: stringData folded into base64 data. */
function asStored(yamlText: string): KubeObject {
  const docs = parseAllDocuments(yamlText).map((d) => d.toJS()).filter(Boolean) as (KubeObject & { stringData?: Record<string, string> })[];
  const { stringData, ...secret } = docs[0]!;
  return { ...secret, data: Object.fromEntries(Object.entries(stringData ?? {}).map(([k, v]) => [k, b64(v)])) } as KubeObject;
}

async function localCluster(t: ExecutionContext): Promise<{ api: KubeApiServerStandIn; cp: (remoteClusterTimeoutMs?: number) => Promise<ControlPlane> }> {
  const { api, kubeconfig } = await standIn(t);
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
  api.apply(node('node-a', '172.18.0.2'));
  api.apply(service('backend'));
  api.apply(pod('backend-a', '10.244.1.5', 'node-a', { app: 'backend' }));
  api.apply(pod('client', '10.244.1.6', 'node-a'));
  syncEndpointSlices(api);
  return {
    api,
    cp: async (remoteClusterTimeoutMs?: number) => {
      const cp = await startControlPlane({
        grpcAddress: '127.0.0.1:0',
        adminAddress: '127.0.0.1:0',
        processMetrics: false,
        cluster: 'cluster-a',
        network: 'net-a',
        kubernetes: { kubeconfig, ...FAST },
        ...(remoteClusterTimeoutMs !== undefined ? { remoteClusterTimeoutMs } : {}),
      });
      t.teardown(() => cp.close());
      return cp;
    },
  };
}

/** The control plane's first snapshot (a Kubernetes source compiles it after start resolves, once it listed). */
function firstSnapshot(cp: ControlPlane): Promise<Snapshot> {
  const now = cp.snapshot();
  if (now) return Promise.resolve(now);
  return new Promise((resolve) => {
    const off = cp.onSnapshot((s) => {
      off();
      resolve(s);
    });
  });
}
const remoteUidsOf = (s: Snapshot | undefined) => (s?.workloads ?? []).filter((w) => w.cluster && w.cluster !== 'cluster-a').map((w) => `${w.uid}@${w.network ?? ''}`).sort();

const remoteUids = (cp: ControlPlane) => (cp.snapshot()?.workloads ?? []).filter((w) => w.cluster && w.cluster !== 'cluster-a').map((w) => `${w.uid}@${w.network ?? ''}`).sort();
const localUids = (cp: ControlPlane) => (cp.snapshot()?.workloads ?? []).filter((w) => w.uid.split('/').length === 2).map((w) => w.uid).sort();
const backendEndpoints = (cp: ControlPlane) => cp.snapshot()?.services.find((s) => s.name === 'backend')?.ports[0]?.endpoints.map((e) => e.ip).sort() ?? [];

async function unusedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

test('create-remote-secret prints the Secret for cluster B; applied in A it adds B live, a changed kubeconfig replaces it, deleting it removes it and ends its watches, the local state untouched', async (t) => {
  const b = await standIn(t);
  fillCluster(b.api, { network: 'net-b', backendPod: 'backend-b', ip: '10.245.1.5', node: 'node-1', nodeIp: '172.19.0.2' });
  installReader(b.api, 'reader-token-b');
  const yamlText = await createRemoteSecret({ name: 'cluster-b', kubeconfig: b.kubeconfig });
  const secret = asStored(yamlText);
  t.like(secret.metadata, { name: 'istio-remote-secret-cluster-b', namespace: NS, labels: { 'istio/multiCluster': 'true' }, annotations: { 'networking.istio.io/cluster': 'cluster-b' } });
  const kc = parseYaml(Buffer.from((secret.data as Record<string, string>)['cluster-b']!, 'base64').toString()) as { clusters: { cluster: { server: string; 'certificate-authority-data': string } }[]; users: { user: { token: string } }[] };
  t.is(kc.users[0]!.user.token, 'reader-token-b', "the reader's token, not the admin's");
  t.is(kc.clusters[0]!.cluster.server, b.api.url);
  t.is(Buffer.from(kc.clusters[0]!.cluster['certificate-authority-data'], 'base64').toString(), b.api.caPem);

  const a = await localCluster(t);
  const cp = await a.cp();
  await eventually(() => cp.snapshot(), 20_000, 'the first snapshot');
  const local = localUids(cp);
  t.deepEqual(local, ['demo/backend-a', 'demo/client']);

  a.api.apply(secret);
  await eventually(() => remoteUids(cp).length === 1, 20_000, "cluster B's pod");
  t.deepEqual(remoteUids(cp), ['cluster-b/demo/backend-b@net-b'], "B's network from its own nodemesh-system label");
  t.deepEqual(backendEndpoints(cp), ['10.244.1.5', '10.245.1.5'], 'one backend, endpoints of both clusters');
  await eventually(() => b.api.openWatches('Pod') >= 1, 20_000, 'A watching B');
  const st = cp.status().remoteClusters!.find((r) => r.name === 'cluster-b')!;
  t.like(st, { network: 'net-b', workloads: 1, services: 1 });
  t.regex(st.configDir, /^Secret nodemesh-system\/istio-remote-secret-cluster-b, key cluster-b \(https:\/\/127\.0\.0\.1:\d+\)$/);

  // the cluster moves (a new API server address): the same Secret, a new kubeconfig
  const c = await standIn(t);
  fillCluster(c.api, { network: 'net-b', backendPod: 'backend-c', ip: '10.245.2.7', node: 'node-1', nodeIp: '172.19.0.2' });
  installReader(c.api, 'reader-token-c');
  a.api.apply(asStored(await createRemoteSecret({ name: 'cluster-b', kubeconfig: c.kubeconfig })));
  await eventually(() => remoteUids(cp).join() === 'cluster-b/demo/backend-c@net-b', 20_000, 'cluster B read from its new server');
  await eventually(() => b.api.openWatches() === 0, 20_000, 'every watch on the old server ended');
  t.deepEqual(localUids(cp), local);

  t.true(a.api.remove('Secret', NS, 'istio-remote-secret-cluster-b'));
  await eventually(() => remoteUids(cp).length === 0, 20_000, 'cluster B gone');
  await eventually(() => c.api.openWatches() === 0, 20_000, 'every watch on B ended with its Secret');
  t.deepEqual(localUids(cp), local, 'the local workloads stay');
  t.deepEqual(backendEndpoints(cp), ['10.244.1.5']);
  t.deepEqual(cp.status().remoteClusters, []);
});

test('a value that is no kubeconfig and an unreachable API server are errors naming the Secret and key, counted; the other cluster of the same Secret is read; fixing the value clears the error', async (t) => {
  const b = await standIn(t);
  fillCluster(b.api, { network: 'net-b', backendPod: 'backend-b', ip: '10.245.1.5', node: 'node-1', nodeIp: '172.19.0.2' });
  installReader(b.api, 'reader-token-b');
  const good = asStored(await createRemoteSecret({ name: 'cluster-b', kubeconfig: b.kubeconfig }));
  const port = await unusedPort();
  const unreachable = (good.data as Record<string, string>)['cluster-b']!;
  const unreachableKc = Buffer.from(unreachable, 'base64').toString().replace(b.api.url, `https://127.0.0.1:${port}`);
  const secret: KubeObject = {
    ...good,
    metadata: { ...good.metadata, name: 'istio-remote-secret-mixed' },
    data: { 'cluster-b': (good.data as Record<string, string>)['cluster-b']!, 'cluster-c': b64('clusters: [this is not'), 'cluster-d': b64(unreachableKc) },
  };
  const a = await localCluster(t);
  a.api.apply(secret);
  // cluster D never lists: the start waits for it no longer than the remote cluster timeout
  const cp = await a.cp(500);
  t.deepEqual(remoteUidsOf(await firstSnapshot(cp)), ['cluster-b/demo/backend-b@net-b'], 'the first snapshot has the cluster that listed in time');
  const error = await eventually(() => cp.status().remoteClusters?.find((r) => r.name === 'cluster-d')?.error, 20_000, "cluster D's error");
  t.regex(error, /^Secret nodemesh-system\/istio-remote-secret-mixed, key cluster-d: the API server of cluster cluster-d \(https:\/\/127\.0\.0\.1:\d+\) cannot be read/);
  const secretErrors = cp.status().remoteSecretErrors!;
  t.is(secretErrors.length, 1);
  t.like(secretErrors[0], { secret: `Secret ${NS}/istio-remote-secret-mixed`, key: 'cluster-c' });
  t.regex(secretErrors[0]!.message, /^Secret nodemesh-system\/istio-remote-secret-mixed, key cluster-c: the value is not a kubeconfig/);
  const metric = await cp.metrics.registry.getSingleMetricAsString('nodemesh_config_errors_total');
  t.regex(metric, /code="NM_ERR_KUBE",kind="Secret"} 2/, 'each counted once, not per retry');
  t.deepEqual(localUids(cp), ['demo/backend-a', 'demo/client']);
  t.truthy(await cp.rescan(), 'a rescan does not wait for a cluster that cannot be read');
  const text = formatConfigStatus(cp.status());
  t.true(text.includes('key cluster-c: the value is not a kubeconfig'), text);
  t.true(text.includes('key cluster-d: the API server of cluster cluster-d'), text);

  // the bad value fixed (cluster C is B's server under another name: a pod CIDR clash, refused per pod)
  a.api.apply({ ...a.api.get('Secret', NS, 'istio-remote-secret-mixed')!, data: { ...(secret.data as Record<string, string>), 'cluster-c': (good.data as Record<string, string>)['cluster-b']! } });
  await eventually(() => (cp.status().remoteSecretErrors ?? []).length === 0, 20_000, 'the Secret error cleared');
  await eventually(() => cp.status().remoteClusters?.find((r) => r.name === 'cluster-c')?.refused === 1, 20_000, 'cluster C read');
  t.deepEqual(remoteUids(cp), ['cluster-b/demo/backend-b@net-b']);
});

test("a control plane's first snapshot already holds the remote clusters its Secrets name (istiod's PILOT_REMOTE_CLUSTER_TIMEOUT): agents are not told at its start that the other cluster's endpoints are gone", async (t) => {
  const b = await standIn(t);
  fillCluster(b.api, { network: 'net-b', backendPod: 'backend-b', ip: '10.245.1.5', node: 'node-1', nodeIp: '172.19.0.2' });
  installReader(b.api, 'reader-token-b');
  const a = await localCluster(t);
  a.api.apply(asStored(await createRemoteSecret({ name: 'cluster-b', kubeconfig: b.kubeconfig })));
  // B answers its lists slowly: the first snapshot still waits for them
  b.api.delayLists(300);
  const cp = await a.cp();
  const first = await firstSnapshot(cp);
  t.deepEqual(remoteUidsOf(first), ['cluster-b/demo/backend-b@net-b']);
  const endpoints = first.services.find((s) => s.name === 'backend')?.ports[0]?.endpoints.map((e) => e.ip).sort();
  t.deepEqual(endpoints, ['10.244.1.5', '10.245.1.5'], "backend's endpoints in both clusters from the first snapshot on");
});

test('a key whose value goes bad keeps the cluster it named (its last good state), with the error', async (t) => {
  const b = await standIn(t);
  fillCluster(b.api, { network: 'net-b', backendPod: 'backend-b', ip: '10.245.1.5', node: 'node-1', nodeIp: '172.19.0.2' });
  installReader(b.api, 'reader-token-b');
  const a = await localCluster(t);
  const cp = await a.cp();
  a.api.apply(asStored(await createRemoteSecret({ name: 'cluster-b', kubeconfig: b.kubeconfig })));
  await eventually(() => remoteUids(cp).length === 1, 20_000, "cluster B's pod");
  const stored = a.api.get('Secret', NS, 'istio-remote-secret-cluster-b')!;
  a.api.apply({ ...stored, data: { 'cluster-b': b64('apiVersion: v1\nkind: Config\nclusters: []\n') } });
  await eventually(() => cp.status().remoteSecretErrors?.length === 1, 20_000, 'the error');
  t.regex(cp.status().remoteSecretErrors![0]!.message, /key cluster-b: the kubeconfig names no current cluster/);
  t.deepEqual(remoteUids(cp), ['cluster-b/demo/backend-b@net-b'], 'still read with the last good kubeconfig');
  await eventually(() => b.api.openWatches('Pod') >= 1, 20_000, 'A still watching B');
});

test('readRemoteSecrets: a name in two Secrets goes to the first by name, a key naming this cluster or a --remote-cluster directory or no name is refused, http is refused, each naming the Secret and key', (t) => {
  const kc = (server: string) =>
    b64(stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'x', cluster: { server } }], users: [{ name: 'x', user: { token: 't' } }], contexts: [{ name: 'x', context: { cluster: 'x', user: 'x' } }], 'current-context': 'x' }));
  const s = (name: string, data: Record<string, string>, annotations: Record<string, string> = {}) => ({ metadata: { name, namespace: NS, annotations }, data });
  const { clusters, errors } = readRemoteSecrets(
    [
      s('second', { 'cluster-b': kc('https://10.0.0.2:6443'), 'cluster-e': kc('http://10.0.0.5:8080') }),
      s('first', { 'cluster-b': kc('https://10.0.0.1:6443'), 'cluster-a': kc('https://10.0.0.9:6443'), lab: kc('https://10.0.0.3:6443'), '-bad-': kc('https://10.0.0.4:6443') }, { 'nodemesh.io/network': 'net-b' }),
      s('empty', {}),
    ],
    NS,
    'cluster-a',
    ['lab'],
  );
  t.deepEqual(clusters.map((c) => [c.name, c.origin, c.network]), [['cluster-b', `Secret ${NS}/first, key cluster-b`, 'net-b']]);
  t.true(clusters[0]!.kubeconfig.includes('https://10.0.0.1:6443'));
  const byKey = Object.fromEntries(errors.map((e) => [`${e.secret.split('/')[1]}:${e.key}`, e.message]));
  t.regex(byKey['first:-bad-']!, /key -bad-: the key is a remote cluster's name/);
  t.regex(byKey['first:cluster-a']!, /names this cluster \(--cluster cluster-a\)/);
  t.regex(byKey['first:lab']!, /already read from a directory/);
  t.regex(byKey['second:cluster-b']!, /^Secret nodemesh-system\/second, key cluster-b: cluster cluster-b is already read from Secret nodemesh-system\/first, key cluster-b/);
  t.regex(byKey['second:cluster-e']!, /is not https/);
  t.regex(byKey['empty:']!, /holds no key/);
  t.is(errors.length, 6);
  t.regex(checkKubeconfig('{')!, /not a kubeconfig/);
});

test('create-remote-secret names what is missing: no reader applied, a token not filled yet, an http --server', async (t) => {
  const b = await standIn(t);
  await t.throwsAsync(createRemoteSecret({ name: 'cluster-b', kubeconfig: b.kubeconfig }), { message: /no Secret nodemesh-system\/nodemesh-reader-token: apply the reader first \(kubectl apply -k deploy\/kubernetes\/remote-reader\)/ });
  b.api.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: READER_TOKEN_SECRET, namespace: NS }, type: 'kubernetes.io/service-account-token' } as KubeObject);
  await t.throwsAsync(createRemoteSecret({ name: 'cluster-b', kubeconfig: b.kubeconfig }), { message: /holds no token yet/ });
  installReader(b.api, 'tok');
  await t.throwsAsync(createRemoteSecret({ name: 'cluster-b', kubeconfig: b.kubeconfig, server: 'http://10.0.0.1' }), { message: /https only/ });
  await t.throwsAsync(createRemoteSecret({ name: 'bad name', kubeconfig: b.kubeconfig }), { message: /--name "bad name"/ });
  const withServer = asStored(await createRemoteSecret({ name: 'cluster-b', kubeconfig: b.kubeconfig, server: 'https://203.0.113.7:6443', network: 'net-b' }));
  t.is((withServer.metadata.annotations as Record<string, string>)['nodemesh.io/network'], 'net-b');
  t.true(Buffer.from((withServer.data as Record<string, string>)['cluster-b']!, 'base64').toString().includes('server: https://203.0.113.7:6443'));
});
