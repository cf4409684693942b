// The control plane's security compilation (control/compile/security.ts) beyond PeerAuthentication
// precedence and AuthorizationPolicy matching: what it hands the agents does not depend on the
// order the API server lists things in, and only an enforced policy that tests HTTP attributes
// makes the destination proxy parse HTTP.
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { compileSecurity } from '../../control/compile/security.js';
import type { Workload } from '../../control/api/snapshot.js';
import { authorizationPolicy, compileYaml, peerAuthentication, podYaml, policyOf, resourcesOf } from '../helpers/config-yaml.js';
import { holds } from '../helpers/property-holds.js';

const workload = (namespace: string, name: string, labels: Record<string, string>): Workload => ({
  uid: `${namespace}/${name}`,
  name,
  namespace,
  node: 'n',
  ip: '10.244.0.2',
  serviceAccount: 'default',
  labels,
  meshed: true,
  spiffeId: `spiffe://cluster.local/ns/${namespace}/sa/default`,
  failOpen: false,
  workloadName: '',
});

test('the security config is the same whatever order the resources and the pods are listed in: policies by namespace then name, workloads by uid', (t) => {
  const docs = [
    authorizationPolicy('foo', 'b-deny', 'action: DENY\n  rules:\n  - to:\n    - operation: {paths: ["/admin"]}'),
    authorizationPolicy('foo', 'a-allow', 'rules:\n  - from:\n    - source: {namespaces: ["bar"]}'),
    authorizationPolicy('bar', 'z-allow', 'rules:\n  - {}'),
    authorizationPolicy('istio-system', 'mesh-audit', 'action: AUDIT\n  rules:\n  - {}'),
    peerAuthentication('foo', 'ns', 'mtls: {mode: STRICT}'),
  ];
  const resources = resourcesOf(docs);
  const workloads = [workload('foo', 'b', { app: 'b' }), workload('bar', 'c', { app: 'c' }), workload('foo', 'a', { app: 'a' })];
  const compile = (rs: typeof resources, ws: Workload[]) => compileSecurity(rs, { workloads: ws, services: [], trustDomain: 'cluster.local', rootNamespace: 'istio-system' });
  const reference = compile(resources, workloads);
  t.deepEqual(
    reference.authorizationPolicies.map((p) => `${p.namespace}/${p.name}`),
    ['bar/z-allow', 'foo/a-allow', 'foo/b-deny', 'istio-system/mesh-audit'],
  );
  t.deepEqual(
    reference.workloads.map((w) => w.workload),
    ['bar/c', 'foo/a', 'foo/b'],
  );
  holds(
    t,
    fc.property(fc.shuffledSubarray(resources, { minLength: resources.length }), fc.shuffledSubarray(workloads, { minLength: workloads.length }), (rs, ws) => {
      assert.deepEqual(compile(rs, ws), reference);
    }),
  );
});

test('a dry-run policy with HTTP rules, like an AUDIT one, does not make the proxy parse HTTP; the same policy enforced does', (t) => {
  const rule = 'rules:\n  - to:\n    - operation: {methods: ["POST"]}';
  const dryRun = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: shadow
  namespace: foo
  annotations:
    "istio.io/dry-run": "true"
spec:
  action: DENY
  ${rule}
`;
  const pod = podYaml('a', { ns: 'foo' });
  t.false(policyOf(compileYaml([pod, dryRun]), 'foo/a').http, 'dry-run DENY');
  t.false(policyOf(compileYaml([pod, dryRun.replace('action: DENY', 'action: ALLOW')]), 'foo/a').http, 'dry-run ALLOW');
  t.true(policyOf(compileYaml([pod, authorizationPolicy('foo', 'enforced', `action: DENY\n  ${rule}`)]), 'foo/a').http, 'enforced DENY');
});

test('an AuthorizationPolicy whose targetRef names a Service that does not exist (yet) applies to no workload, and the compile goes on', (t) => {
  const resources = resourcesOf([authorizationPolicy('foo', 'by-service', 'targetRefs:\n  - {kind: Service, group: "", name: missing}\n  rules:\n  - {}')]);
  const cfg = compileSecurity(resources, { workloads: [workload('foo', 'a', { app: 'a' })], services: [], trustDomain: 'cluster.local', rootNamespace: 'istio-system' });
  t.deepEqual(cfg.workloads[0]!.authorizationPolicies, []);
  t.deepEqual(cfg.authorizationPolicies.map((p) => p.name), ['by-service']);
});

test('without a workload-level PeerAuthentication no port has a mode of its own: namespace and mesh policies carry no port-level mTLS', (t) => {
  const resources = resourcesOf([peerAuthentication('foo', 'ns', 'mtls: {mode: STRICT}'), peerAuthentication('istio-system', 'mesh', 'mtls: {mode: PERMISSIVE}')]);
  const cfg = compileSecurity(resources, { workloads: [workload('foo', 'a', { app: 'a' }), workload('bar', 'b', {})], services: [], trustDomain: 'cluster.local', rootNamespace: 'istio-system' });
  t.deepEqual(
    cfg.workloads.map((w) => [w.workload, w.mtlsMode, w.portMtls]),
    [
      ['bar/b', 'PERMISSIVE', []],
      ['foo/a', 'STRICT', []],
    ],
  );
});

const serviceYaml = (name: string, app: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: shop}
spec:
  selector: {app: ${app}}
  ports: [{port: 80}]
`;

test('targetRefs to several Services apply the policy to the pods behind any of them; a Gateway reference applies to nothing, even when a Service has its name', (t) => {
  const s = compileYaml([
    podYaml('web-1', { ns: 'shop', labels: { app: 'web' } }),
    podYaml('api-1', { ns: 'shop', labels: { app: 'api' } }),
    podYaml('db-1', { ns: 'shop', labels: { app: 'db' } }),
    serviceYaml('web', 'web'),
    serviceYaml('api', 'api'),
    serviceYaml('db', 'db'),
    authorizationPolicy('shop', 'two', 'targetRefs: [{kind: Service, group: "", name: web}, {kind: Service, group: "", name: api}]\n  rules: [{}]'),
    authorizationPolicy('shop', 'gw', 'targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: db}]\n  rules: [{}]'),
  ]);
  const applied = Object.fromEntries(s.security.workloads.map((w) => [w.workload, w.authorizationPolicies]));
  t.deepEqual(applied, { 'shop/api-1': ['shop/two'], 'shop/db-1': [], 'shop/web-1': ['shop/two'] });
});
