// The compiler as a specification: resources in force → the snapshot agents consume.
// Resources go through the real path (YAML → validation → store) before compiling.
import test from 'ava';
import fc from 'fast-check';
import { compileSnapshot, SERVICE_CIDR } from '../../control/compile/compiler.js';
import { sameContent } from '../../control/api/snapshot-delta.js';
import type { Resource } from '../../control/model/resources.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { resourcesOf } from '../helpers/config-yaml.js';
import { holds } from '../helpers/property-holds.js';

interface PodOpts {
  ns?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ip?: string;
  phase?: string;
  node?: string;
  sa?: string;
  ports?: { name: string; containerPort: number; protocol?: string }[];
  terminating?: boolean;
  hostNetwork?: boolean;
}

function pod(name: string, o: PodOpts = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: o.ns ?? 'default',
      labels: o.labels ?? {},
      annotations: o.annotations ?? {},
      ...(o.terminating ? { deletionTimestamp: '2024-01-01T00:00:00Z' } : {}),
    },
    spec: {
      nodeName: o.node ?? 'node-a',
      ...(o.sa ? { serviceAccountName: o.sa } : {}),
      ...(o.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'main', ports: o.ports ?? [] }],
    },
    status: { ...(o.ip ? { podIP: o.ip } : {}), ...(o.phase ? { phase: o.phase } : {}) },
  };
}

function service(name: string, spec: Record<string, unknown>, ns = 'default'): object {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec };
}

function namespace(name: string, labels: Record<string, string> = {}): object {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

/** Objects → one YAML file (JSON is YAML) → validated resources in force. */
function resources(objects: object[]): Resource[] {
  return resourcesOf(objects.map((o) => `${JSON.stringify(o)}\n`), '/config/test.yaml');
}

function compile(objects: object[], previous?: Snapshot, trustDomain?: string): Snapshot {
  return compileSnapshot(resources(objects), trustDomain ? { trustDomain } : {}, previous);
}

function endpointsOf(s: Snapshot, svc: string, port = 0): string[] {
  const found = s.services.find((x) => `${x.namespace}/${x.name}` === svc);
  if (!found) throw new Error(`no service ${svc}`);
  return found.ports[port]!.endpoints.map((e) => `${e.workload}@${e.ip}:${e.port}`);
}

test('a Service selects the pods of its namespace whose labels match, that have an IP, run, and are not terminating', (t) => {
  const web = { app: 'web' };
  const snap = compile([
    service('web', { selector: web, ports: [{ port: 80, targetPort: 8080 }] }),
    pod('running', { labels: { ...web, extra: 'x' }, ip: '10.1.0.2', phase: 'Running' }),
    pod('no-phase', { labels: web, ip: '10.1.0.3' }),
    pod('other-ns', { ns: 'shop', labels: web, ip: '10.1.0.4', phase: 'Running' }),
    pod('no-ip', { labels: web, phase: 'Running' }),
    pod('pending', { labels: web, ip: '10.1.0.5', phase: 'Pending' }),
    pod('terminating', { labels: web, ip: '10.1.0.6', phase: 'Running', terminating: true }),
    pod('other-app', { labels: { app: 'api' }, ip: '10.1.0.7', phase: 'Running' }),
  ]);
  t.deepEqual(endpointsOf(snap, 'default/web'), ['default/running@10.1.0.2:8080', 'default/no-phase@10.1.0.3:8080']);
});

test('a Service without a selector (or with an empty one) has no endpoints', (t) => {
  const snap = compile([
    service('manual', { ports: [{ port: 80 }] }),
    service('empty', { selector: {}, ports: [{ port: 80 }] }),
    pod('p', { labels: { app: 'web' }, ip: '10.1.0.2' }),
  ]);
  t.deepEqual(endpointsOf(snap, 'default/manual'), []);
  t.deepEqual(endpointsOf(snap, 'default/empty'), []);
});

test('an absent targetPort means the port itself', (t) => {
  const snap = compile([service('web', { selector: { app: 'web' }, ports: [{ port: 9080 }] }), pod('p', { labels: { app: 'web' }, ip: '10.1.0.2' })]);
  t.is(snap.services[0]!.ports[0]!.targetPort, 9080);
  t.deepEqual(endpointsOf(snap, 'default/web'), ['default/p@10.1.0.2:9080']);
});

test('a named targetPort is resolved per pod against its container ports; pods without that port are skipped', (t) => {
  const sel = { app: 'web' };
  const objects = [
    service('web', { selector: sel, ports: [{ name: 'http', port: 80, targetPort: 'http-alt' }, { name: 'metrics', port: 9090, targetPort: 'metrics' }] }),
    pod('a', { labels: sel, ip: '10.1.0.2', ports: [{ name: 'http-alt', containerPort: 8080 }, { name: 'metrics', containerPort: 15020 }] }),
    pod('b', { labels: sel, ip: '10.1.0.3', ports: [{ name: 'http-alt', containerPort: 8081 }] }),
    pod('c', { labels: sel, ip: '10.1.0.4', ports: [{ name: 'http-alt', containerPort: 8080, protocol: 'UDP' }] }),
  ];
  const snap = compile(objects);
  t.deepEqual(endpointsOf(snap, 'default/web', 0), ['default/a@10.1.0.2:8080', 'default/b@10.1.0.3:8081']);
  t.deepEqual(endpointsOf(snap, 'default/web', 1), ['default/a@10.1.0.2:15020']);
  // the service-level number: the one every endpoint agrees on, 0 when they differ
  t.is(snap.services[0]!.ports[0]!.targetPort, 0);
  t.is(snap.services[0]!.ports[1]!.targetPort, 15020);
});

test('meshed: the pod annotation (or label) wins over the namespace label, which alone opts pods in', (t) => {
  const snap = compile([
    namespace('meshed-ns', { 'nodemesh.io/mesh': 'enabled' }),
    namespace('plain-ns'),
    pod('inherits', { ns: 'meshed-ns', ip: '10.1.0.2' }),
    pod('opts-out', { ns: 'meshed-ns', ip: '10.1.0.3', annotations: { 'nodemesh.io/mesh': 'disabled' } }),
    pod('opts-in', { ns: 'plain-ns', ip: '10.1.0.4', annotations: { 'nodemesh.io/mesh': 'enabled' } }),
    pod('plain', { ns: 'plain-ns', ip: '10.1.0.5' }),
    pod('label-in', { ns: 'plain-ns', ip: '10.1.0.7', labels: { 'nodemesh.io/mesh': 'enabled' } }),
    pod('label-out', { ns: 'meshed-ns', ip: '10.1.0.8', labels: { 'nodemesh.io/mesh': 'disabled' } }),
    pod('annotation-over-label', {
      ns: 'plain-ns',
      ip: '10.1.0.9',
      labels: { 'nodemesh.io/mesh': 'enabled' },
      annotations: { 'nodemesh.io/mesh': 'disabled' },
    }),
    pod('no-namespace-object', { ns: 'ghost', ip: '10.1.0.6' }),
    pod('host-network', { ns: 'meshed-ns', ip: '192.168.1.10', hostNetwork: true }),
  ]);
  const meshed = Object.fromEntries(snap.workloads.map((w) => [w.name, w.meshed]));
  t.deepEqual(meshed, {
    inherits: true,
    'opts-out': false,
    'opts-in': true,
    plain: false,
    'label-in': true,
    'label-out': false,
    'annotation-over-label': false,
    'no-namespace-object': false,
    'host-network': false,
  });
});

test('workloads are the pods with an IP that have not finished, with their identity in the configured trust domain', (t) => {
  const snap = compile(
    [
      pod('with-sa', { ns: 'shop', ip: '10.1.0.2', sa: 'cart', node: 'node-b', labels: { app: 'cart' } }),
      pod('default-sa', { ns: 'shop', ip: '10.1.0.3' }),
      pod('no-ip', { ns: 'shop' }),
      pod('done', { ns: 'shop', ip: '10.1.0.4', phase: 'Succeeded' }),
    ],
    undefined,
    'example.org',
  );
  t.deepEqual(snap.workloads, [
    {
      uid: 'shop/default-sa',
      name: 'default-sa',
      namespace: 'shop',
      node: 'node-a',
      ip: '10.1.0.3',
      serviceAccount: 'default',
      labels: {},
      meshed: false,
      spiffeId: 'spiffe://example.org/ns/shop/sa/default',
      failOpen: false,
      workloadName: 'default-sa',
    },
    {
      uid: 'shop/with-sa',
      name: 'with-sa',
      namespace: 'shop',
      node: 'node-b',
      ip: '10.1.0.2',
      serviceAccount: 'cart',
      labels: { app: 'cart' },
      meshed: false,
      spiffeId: 'spiffe://example.org/ns/shop/sa/cart',
      failOpen: false,
      workloadName: 'with-sa',
    },
  ]);
});

test('the version increases by one when the content changes, and only then', (t) => {
  const base = [service('web', { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ port: 80 }] }), pod('p', { labels: { app: 'web' }, ip: '10.1.0.2' })];
  const v1 = compile(base);
  t.is(v1.version, 1);
  const again = compile(base, v1);
  t.is(again, v1, 'same content: the previous snapshot is kept as is');
  const v2 = compile([...base, pod('q', { labels: { app: 'web' }, ip: '10.1.0.3' })], v1);
  t.is(v2.version, 2);
  t.deepEqual(endpointsOf(v2, 'default/web'), ['default/p@10.1.0.2:80', 'default/q@10.1.0.3:80']);
  const back = compile(base, v2);
  t.is(back.version, 3, 'a change back is still a change');
});

test('a pod being created (no IP yet) that opts out of its meshed namespace is a new snapshot version on its own', (t) => {
  // the agent answers the CNI ADD of such a pod from snapshot.namespaces[].pendingExceptions:
  // a change only there must still reach the agents
  const base = [namespace('shop', { 'nodemesh.io/mesh': 'enabled' }), pod('web-1', { ns: 'shop', ip: '10.1.0.2' })];
  const v1 = compile(base);
  const v2 = compile([...base, pod('batch', { ns: 'shop', annotations: { 'nodemesh.io/mesh': 'disabled' } })], v1);
  t.is(v2.version, 2);
  t.deepEqual(v2.namespaces.find((n) => n.name === 'shop')?.pendingExceptions, ['batch']);
  t.is(compile([...base, pod('batch', { ns: 'shop', annotations: { 'nodemesh.io/mesh': 'disabled' } })], v2), v2, 'the same content again is the same version');
});

test('a selector of several labels selects the pods that have all of them, whichever label is the rarest', (t) => {
  const snap = compile([
    service('pair', { selector: { app: 'web', tier: 'front' }, ports: [{ port: 80 }] }),
    service('empty', { selector: {}, ports: [{ port: 81 }] }),
    pod('both', { labels: { app: 'web', tier: 'front' }, ip: '10.1.0.2' }),
    pod('app-only-1', { labels: { app: 'web' }, ip: '10.1.0.3' }),
    pod('app-only-2', { labels: { app: 'web', tier: 'back' }, ip: '10.1.0.4' }),
    pod('tier-only', { labels: { tier: 'front' }, ip: '10.1.0.5' }),
    pod('elsewhere', { ns: 'shop', labels: { app: 'web', tier: 'front' }, ip: '10.1.0.6' }),
  ]);
  t.deepEqual(endpointsOf(snap, 'default/pair'), ['default/both@10.1.0.2:80']);
  // `selector: {}` is no selector (Kubernetes drops the empty map): no endpoints
  t.deepEqual(endpointsOf(snap, 'default/empty'), []);
});

test('the snapshot does not depend on the order resources were written in', (t) => {
  const objects = [
    namespace('shop', { 'nodemesh.io/mesh': 'enabled' }),
    service('web', { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'tcp', port: 9000 }] }, 'shop'),
    service('db', { clusterIP: 'None', selector: { app: 'db' }, ports: [{ port: 5432 }] }, 'shop'),
    service('api', { clusterIP: '10.96.1.1', selector: { app: 'api' }, ports: [{ port: 80 }] }),
    pod('web-1', { ns: 'shop', labels: { app: 'web' }, ip: '10.1.0.12', ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('web-2', { ns: 'shop', labels: { app: 'web' }, ip: '10.1.0.9', ports: [{ name: 'http', containerPort: 8081 }] }),
    pod('db-1', { ns: 'shop', labels: { app: 'db' }, ip: '10.1.0.3' }),
    pod('api-1', { labels: { app: 'api' }, ip: '10.1.0.100', node: 'node-b' }),
  ];
  const reference = compile(objects);
  holds(
    t,
    fc.property(fc.shuffledSubarray(objects, { minLength: objects.length, maxLength: objects.length }), (shuffled) => sameContent(compile(shuffled), reference)),
    { numRuns: 50 },
  );
});

test('a Service written without a clusterIP gets a free address from the service range, kept across recompiles', (t) => {
  const sel = { selector: { app: 'x' }, ports: [{ port: 80 }] };
  const objects = [service('fixed', { ...sel, clusterIP: '10.96.0.10' }), service('auto', sel), service('headless', { ...sel, clusterIP: 'None' })];
  const v1 = compile(objects);
  const ipOf = (s: Snapshot, name: string) => s.services.find((x) => x.name === name)!.clusterIp;
  const auto = ipOf(v1, 'auto');
  t.true(auto.startsWith('10.96.'), `${auto} in ${SERVICE_CIDR}`);
  t.not(auto, '10.96.0.10');
  t.is(ipOf(v1, 'headless'), '');
  // more Services (one written with the address "auto" got would take it: it loses it, as written wins)
  const more = [...objects, ...Array.from({ length: 20 }, (_, i) => service(`extra-${i}`, sel))];
  const v2 = compile(more, v1);
  t.is(ipOf(v2, 'auto'), auto);
  const all = v2.services.map((s) => s.clusterIp).filter((ip) => ip !== '');
  t.is(new Set(all).size, all.length, 'no two Services share an address');
  const taken = compile([...more, service('claims-it', { ...sel, clusterIP: auto })], v2);
  t.is(ipOf(taken, 'claims-it'), auto);
  t.not(ipOf(taken, 'auto'), auto);
});

test('services and workloads carry hostname, ports, protocol and appProtocol as written', (t) => {
  const snap = compile([
    service('echo', { clusterIP: '10.96.5.5', selector: { app: 'echo' }, ports: [{ name: 'grpc', port: 7070, appProtocol: 'kubernetes.io/h2c' }, { name: 'dns', port: 53, protocol: 'UDP' }] }, 'mesh'),
  ]);
  t.deepEqual(snap.services, [
    {
      name: 'echo',
      namespace: 'mesh',
      hostname: 'echo.mesh.svc.cluster.local',
      clusterIp: '10.96.5.5',
      ports: [
        { name: 'grpc', port: 7070, targetPort: 7070, protocol: 'TCP', appProtocol: 'kubernetes.io/h2c', endpoints: [] },
        { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP', appProtocol: '', endpoints: [] },
      ],
    },
  ]);
});
