// `lab annotate` without a lab: kubectl's argument syntax, the file source's in-place rewrite
// of one Pod document (the file's other documents untouched, the control plane's reader
// sees the change), and the API path against the stand-in API server (GET, PUT with the
// resourceVersion, a conflict retried, a watch event for the control plane).
import test from 'ava';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { labAnnotate, parseAnnotations } from '../../deploy/lab/lab-annotate.js';
import type { LabState } from '../../deploy/lab/lab-state.js';
import { KubeApiServerStandIn } from '../helpers/kube-apiserver.js';

const POD_A = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: shop\n  annotations:\n    team: blue # owner\nspec:\n  nodeName: n1\n  containers: [{name: c}]\n`;
const POD_B = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n  namespace: shop\nspec:\n  nodeName: n1\n  containers: [{name: c}]\n`;
const SERVICE = `apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports: [{port: 80}]\n`;

function stateFor(configDir: string, kubeconfig?: string): LabState {
  const pod = (name: string) => ({ namespace: 'shop', name, node: 'n1', ip: '10.244.0.2', netns: `nm-x-shop-${name}`, vethNode: 'v', cgroup: '/', etcDir: '/', containers: [] });
  return {
    version: 1,
    name: 'unit',
    status: 'ready',
    slot: 0,
    dir: configDir,
    createdAt: '',
    stateDir: configDir,
    configDir,
    logDir: configDir,
    agents: true,
    control: true,
    cgroupRoot: null,
    bridge: null,
    controlAddress: null,
    ...(kubeconfig ? { apiserver: { kubeconfig, log: '', cgroup: '' } } : {}),
    nodes: [],
    pods: [pod('a'), pod('b')],
    services: [],
    processes: [],
  };
}

async function configDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lk-annotate-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'app.yaml'), `---\n${SERVICE}---\n${POD_A}---\n${POD_B}`);
  return dir;
}

const annotationsIn = async (file: string) =>
  Object.fromEntries(
    parseAllDocuments(await readFile(file, 'utf8'))
      .map((d) => d.toJSON() as { kind: string; metadata: { name: string; annotations?: Record<string, string> } })
      .filter((o) => o.kind === 'Pod')
      .map((o) => [o.metadata.name, o.metadata.annotations]),
  );

test('KEY=VALUE sets, KEY- removes; a bad key or argument is named', (t) => {
  t.deepEqual(parseAnnotations(['nodemesh.io/mesh=enabled', 'team-', 'note=a=b', 'empty=']), [
    { key: 'nodemesh.io/mesh', value: 'enabled' },
    { key: 'team' },
    { key: 'note', value: 'a=b' },
    { key: 'empty', value: '' },
  ]);
  t.throws(() => parseAnnotations([]), { message: /no change given/ });
  t.throws(() => parseAnnotations(['nodemesh.io/mesh']), { message: /"nodemesh.io\/mesh": expected KEY=VALUE to set or KEY- to remove/ });
  t.throws(() => parseAnnotations(['Bad_Prefix/x=1']), { message: /prefix must be a DNS subdomain/ });
  t.throws(() => parseAnnotations(['-x=1']), { message: /name must be 1-63/ });
});

test('the file source: only the Pod document changes, the others and its comment stay; --overwrite as kubectl', async (t) => {
  const dir = await configDir(t);
  const file = path.join(dir, 'app.yaml');
  const r = await labAnnotate(stateFor(dir), 'shop/b', parseAnnotations(['nodemesh.io/mesh=enabled']));
  t.like(r, { pod: 'shop/b', via: 'file', file, changed: true, annotations: { 'nodemesh.io/mesh': 'enabled' } });
  const text = await readFile(file, 'utf8');
  t.true(text.includes('team: blue # owner'), 'the other Pod, its comment included, is as written');
  t.true(text.startsWith(`---\n${SERVICE}`), 'the Service is as written');
  t.deepEqual(await annotationsIn(file), { a: { team: 'blue' }, b: { 'nodemesh.io/mesh': 'enabled' } });
  t.deepEqual((await readdir(dir)).sort(), ['app.yaml'], 'no temporary file left');

  // a key with another value needs --overwrite; the file is left alone
  await t.throwsAsync(labAnnotate(stateFor(dir), 'shop/b', parseAnnotations(['nodemesh.io/mesh=disabled'])), { message: /--overwrite is false but pod shop\/b already has nodemesh.io\/mesh=enabled/ });
  t.is(await readFile(file, 'utf8'), text);
  t.like(await labAnnotate(stateFor(dir), 'shop/b', parseAnnotations(['nodemesh.io/mesh=disabled']), { overwrite: true }), { changed: true });
  // removing: the last key takes the annotations map with it; an absent key is no error
  t.like(await labAnnotate(stateFor(dir), 'shop/b', parseAnnotations(['nodemesh.io/mesh-'])), { changed: true, annotations: {} });
  t.like(await labAnnotate(stateFor(dir), 'shop/b', parseAnnotations(['nodemesh.io/mesh-'])), { changed: false });
  t.deepEqual(await annotationsIn(file), { a: { team: 'blue' }, b: undefined });
  await t.throwsAsync(labAnnotate(stateFor(dir), 'shop/nope', parseAnnotations(['x=1'])), { message: /lab unit has no pod shop\/nope \(pods: shop\/a, shop\/b\)/ });
});

test('the Kubernetes API: GET and PUT with the resourceVersion, a lost race (409) retried on the object read again', async (t) => {
  const api = await KubeApiServerStandIn.start();
  t.teardown(() => api.close());
  const dir = await configDir(t);
  api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 'shop', annotations: { team: 'blue' } }, spec: { nodeName: 'n1', containers: [{ name: 'c' }] }, status: { phase: 'Running', podIP: '10.244.0.2' } });
  const kubeconfig = api.writeKubeconfig(dir);
  const state = stateFor(dir, kubeconfig);

  const r = await labAnnotate(state, 'shop/a', parseAnnotations(['nodemesh.io/mesh=enabled']));
  t.like(r, { via: 'kubernetes', changed: true, annotations: { team: 'blue', 'nodemesh.io/mesh': 'enabled' } });
  t.deepEqual(api.get('Pod', 'shop', 'a')!.metadata.annotations, { team: 'blue', 'nodemesh.io/mesh': 'enabled' });
  t.is((api.get('Pod', 'shop', 'a')!.status as { podIP: string }).podIP, '10.244.0.2', 'the status is the server’s, untouched');

  // another writer's update lands while our PUT is in flight (hooked where the stand-in logs
  // the request, before it compares resourceVersions): that PUT gets 409, the retry wins
  const putsBefore = api.requests.filter((x) => x.startsWith('PUT ')).length;
  let raced = false;
  const push = api.requests.push.bind(api.requests);
  api.requests.push = (...items: string[]) => {
    const n = push(...items);
    if (!raced && items[0]!.startsWith('PUT /api/v1/namespaces/shop/pods/a')) {
      raced = true;
      const now = api.get('Pod', 'shop', 'a')!;
      api.apply({ ...now, metadata: { ...now.metadata, labels: { touched: 'yes' } } });
    }
    return n;
  };
  const second = await labAnnotate(state, 'shop/a', parseAnnotations(['nodemesh.io/mesh-']));
  t.true(raced);
  t.is(api.requests.filter((x) => x.startsWith('PUT ')).length - putsBefore, 2, 'one PUT refused with 409, one accepted');
  t.like(second, { changed: true, annotations: { team: 'blue' } });
  t.deepEqual(api.get('Pod', 'shop', 'a')!.metadata.annotations, { team: 'blue' });
  t.deepEqual(api.get('Pod', 'shop', 'a')!.metadata.labels, { touched: 'yes' }, "the other writer's change is kept");
});
