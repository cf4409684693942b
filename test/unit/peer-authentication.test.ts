// PeerAuthentication precedence as a specification: Istio's documented behaviour and the
// upstream YAML in ../shared/conformance/security/, compiled through the real path (YAML →
// validation → compiler) and read back as the agent does (mode per workload port), plus
// properties over random policies.
import test from 'ava';
import fc from 'fast-check';
import { SecurityIndex } from '../../agent/policy/authorization.js';
import { acceptsPlaintext, mtlsModeFor } from '../../agent/policy/peer-authentication.js';
import { compileSecurity } from '../../control/compile/security.js';
import type { MtlsMode } from '../../control/api/snapshot-security.js';
import type { Workload } from '../../control/api/snapshot.js';
import type { Resource } from '../../control/model/resources.js';
import type { MtlsModeSpec } from '../../control/model/security.js';
import { compileYaml, peerAuthentication, podYaml, policyOf } from '../helpers/config-yaml.js';
import { securitySample, securitySampleTest } from '../helpers/conformance-samples.js';
import { holds } from '../helpers/property-holds.js';

function modes(yaml: string[], uid: string, ports: number[] = [80]): MtlsMode[] {
  const p = policyOf(compileYaml(yaml), uid);
  return ports.map((port) => mtlsModeFor(p, port));
}

test('no PeerAuthentication anywhere: PERMISSIVE', (t) => {
  t.deepEqual(modes([podYaml('a', { ns: 'foo' })], 'foo/a'), ['PERMISSIVE']);
});

test('workload > namespace > mesh', (t) => {
  const pods = [
    podYaml('a', { ns: 'foo', labels: { app: 'a' } }),
    podYaml('b', { ns: 'foo', labels: { app: 'b' } }),
    podYaml('c', { ns: 'bar' }),
  ];
  const yaml = [
    ...pods,
    peerAuthentication('istio-system', 'mesh', 'mtls: {mode: STRICT}'),
    peerAuthentication('foo', 'ns', 'mtls: {mode: PERMISSIVE}'),
    peerAuthentication('foo', 'a', 'selector: {matchLabels: {app: a}}\n  mtls: {mode: STRICT}'),
  ];
  t.deepEqual(modes(yaml, 'foo/a'), ['STRICT'], 'workload');
  t.deepEqual(modes(yaml, 'foo/b'), ['PERMISSIVE'], 'namespace');
  t.deepEqual(modes(yaml, 'bar/c'), ['STRICT'], 'mesh');
  t.deepEqual(policyOf(compileYaml(yaml), 'foo/a').peerAuthentications, ['istio-system/mesh', 'foo/ns', 'foo/a']);
});

test('UNSET inherits from the level above; an UNSET mesh policy is PERMISSIVE', (t) => {
  const pod = podYaml('a', { ns: 'foo', labels: { app: 'a' } });
  t.deepEqual(
    modes(
      [
        pod,
        peerAuthentication('istio-system', 'mesh', 'mtls: {mode: STRICT}'),
        peerAuthentication('foo', 'ns', 'mtls: {mode: UNSET}'),
        peerAuthentication('foo', 'w', 'selector: {matchLabels: {app: a}}'),
      ],
      'foo/a',
    ),
    ['STRICT'],
  );
  t.deepEqual(modes([pod, peerAuthentication('istio-system', 'mesh', 'mtls: {}')], 'foo/a'), ['PERMISSIVE']);
});

test("port-level mTLS overrides the workload mode for that port; an UNSET port inherits the workload's effective mode", (t) => {
  const yaml = [
    podYaml('a', { ns: 'foo', labels: { app: 'a' } }),
    peerAuthentication('foo', 'ns', 'mtls: {mode: STRICT}'),
    peerAuthentication(
      'foo',
      'a',
      `selector: {matchLabels: {app: a}}
  portLevelMtls:
    8080: {mode: PERMISSIVE}
    9090: {mode: UNSET}`,
    ),
  ];
  t.deepEqual(modes(yaml, 'foo/a', [80, 8080, 9090]), ['STRICT', 'PERMISSIVE', 'STRICT']);
});

test('several workload policies select a workload: the oldest wins (creationTimestamp, then name)', (t) => {
  const pod = podYaml('a', { ns: 'foo', labels: { app: 'a', tier: 'web' } });
  const older = peerAuthentication('foo', 'zz-older', 'selector: {matchLabels: {app: a}}\n  mtls: {mode: STRICT}', '2024-01-01T00:00:00Z');
  const newer = peerAuthentication(
    'foo',
    'aa-newer',
    'selector: {matchLabels: {tier: web}}\n  mtls: {mode: DISABLE}',
    '2024-06-01T00:00:00Z',
  );
  t.deepEqual(modes([pod, newer, older], 'foo/a'), ['STRICT']);
  const sameTime = (name: string, mode: string) =>
    peerAuthentication('foo', name, `selector: {matchLabels: {app: a}}\n  mtls: {mode: ${mode}}`, '2024-01-01T00:00:00Z');
  t.deepEqual(modes([pod, sameTime('b-second', 'PERMISSIVE'), sameTime('a-first', 'STRICT')], 'foo/a'), ['STRICT']);
});

test('a second namespace-level (or mesh-level) policy is ignored: the oldest stays in force', (t) => {
  const pod = podYaml('a', { ns: 'foo' });
  const inForce = (...policies: string[]) => modes([pod, ...policies], 'foo/a');
  t.deepEqual(
    inForce(
      peerAuthentication('foo', 'first', 'mtls: {mode: STRICT}', '2024-01-01T00:00:00Z'),
      peerAuthentication('foo', 'second', 'mtls: {mode: PERMISSIVE}', '2024-02-01T00:00:00Z'),
    ),
    ['STRICT'],
  );
  t.deepEqual(
    inForce(
      peerAuthentication('istio-system', 'm2', 'mtls: {mode: PERMISSIVE}', '2024-02-01T00:00:00Z'),
      peerAuthentication('istio-system', 'm1', 'mtls: {mode: STRICT}', '2024-01-01T00:00:00Z'),
    ),
    ['STRICT'],
  );
});

test('a selector in the root namespace is ignored: such a policy applies to no workload', (t) => {
  const yaml = [
    podYaml('a', { ns: 'foo', labels: { app: 'a' } }),
    peerAuthentication('istio-system', 'sel', 'selector: {matchLabels: {app: a}}\n  mtls: {mode: STRICT}'),
  ];
  t.deepEqual(modes(yaml, 'foo/a'), ['PERMISSIVE']);
});

test('a workload in the root namespace: the mesh policy decides, listed once, and a root-namespace selector is ignored even when it selects that workload', (t) => {
  const yaml = [
    podYaml('gw', { ns: 'istio-system', labels: { app: 'gw' } }),
    peerAuthentication('istio-system', 'mesh', 'mtls: {mode: PERMISSIVE}', '2024-01-01T00:00:00Z'),
    // Istio: the workload level is "the one with selector and not in root namespace"
    peerAuthentication('istio-system', 'sel', 'selector: {matchLabels: {app: gw}}\n  mtls: {mode: STRICT}', '2024-01-02T00:00:00Z'),
  ];
  t.deepEqual(modes(yaml, 'istio-system/gw'), ['PERMISSIVE']);
  t.deepEqual(policyOf(compileYaml(yaml), 'istio-system/gw').peerAuthentications, ['istio-system/mesh']);
});

test('the root namespace is configurable', (t) => {
  const s = compileYaml([podYaml('a', { ns: 'foo' }), peerAuthentication('mesh-config', 'default', 'mtls: {mode: STRICT}')], {
    rootNamespace: 'mesh-config',
  });
  t.is(mtlsModeFor(policyOf(s, 'foo/a'), 80), 'STRICT');
});

test('plaintext is accepted under PERMISSIVE and DISABLE, refused under STRICT', (t) => {
  const yaml = [
    podYaml('a', { ns: 'foo', labels: { app: 'a' } }),
    peerAuthentication(
      'foo',
      'a',
      `selector: {matchLabels: {app: a}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: PERMISSIVE}
    9090: {mode: DISABLE}`,
    ),
  ];
  const p = policyOf(compileYaml(yaml), 'foo/a');
  t.deepEqual(
    [80, 8080, 9090].map((port) => acceptsPlaintext(p, port)),
    [false, true, true],
  );
});

// --- upstream YAML -------------------------------------------------------------------------------

securitySampleTest('istio.io mesh-wide STRICT: every workload in every namespace is STRICT', (t) => {
  t.deepEqual(modes([podYaml('a', { ns: 'foo' }), securitySample('istio-io-peerauthentication-mesh-strict.yaml')], 'foo/a', [80, 9090]), [
    'STRICT',
    'STRICT',
  ]);
});

securitySampleTest('istio.io workload STRICT with port 80 DISABLE: plaintext only on 80', (t) => {
  const yaml = [
    podYaml('httpbin', { ns: 'bar', labels: { app: 'httpbin' } }),
    podYaml('other', { ns: 'bar' }),
    securitySample('istio-io-peerauthentication-workload-strict-port-disable.yaml'),
  ];
  t.deepEqual(modes(yaml, 'bar/httpbin', [80, 8000]), ['DISABLE', 'STRICT']);
  t.deepEqual(modes(yaml, 'bar/other', [80]), ['PERMISSIVE']);
});

securitySampleTest('Istio ambient: mesh STRICT, namespace PERMISSIVE, workload port 9090 STRICT (no mode: inherits PERMISSIVE)', (t) => {
  const yaml = [
    podYaml('a', { ns: 'foo', labels: { app: 'a' } }),
    podYaml('b', { ns: 'foo' }),
    podYaml('c', { ns: 'bar' }),
    securitySample('istio-peerauthentication-mesh-strict-ns-permissive-workload-port.yaml'),
  ];
  t.deepEqual(modes(yaml, 'foo/a', [9090, 8080]), ['STRICT', 'PERMISSIVE']);
  t.deepEqual(modes(yaml, 'foo/b', [9090]), ['PERMISSIVE']);
  t.deepEqual(modes(yaml, 'bar/c', [9090]), ['STRICT']);
});

securitySampleTest('Istio ambient: mesh PERMISSIVE, namespace UNSET, workload ports 9090 STRICT and 8080 PERMISSIVE', (t) => {
  const yaml = [
    podYaml('a', { ns: 'foo', labels: { app: 'a' } }),
    securitySample('istio-peerauthentication-mesh-permissive-ns-unset-workload-mixed-ports.yaml'),
  ];
  t.deepEqual(modes(yaml, 'foo/a', [9090, 8080, 80]), ['STRICT', 'PERMISSIVE', 'PERMISSIVE']);
});

securitySampleTest(
  'Istio validation samples: port "80" STRICT over PERMISSIVE; an empty selector is a namespace-level policy with no mode',
  (t) => {
    const yaml = [podYaml('w', { labels: { foo: 'bar' } }), podYaml('x'), securitySample('istio-validation-peerauthentication-valid.yaml')];
    t.deepEqual(modes(yaml, 'default/w', [80, 81]), ['STRICT', 'PERMISSIVE']);
    t.deepEqual(modes(yaml, 'default/x', [80]), ['PERMISSIVE']);
    t.deepEqual(policyOf(compileYaml(yaml), 'default/x').peerAuthentications, ['default/partial-selector']);
  },
);

// --- properties --------------------------------------------------------------------------------

const WORKLOAD: Workload = {
  uid: 'foo/a',
  name: 'a',
  namespace: 'foo',
  node: 'n',
  ip: '10.244.0.2',
  serviceAccount: 'default',
  labels: { app: 'a', tier: 'web' },
  meshed: true,
  spiffeId: 'spiffe://cluster.local/ns/foo/sa/default',
  failOpen: false,
  workloadName: '',
};

interface PaArb {
  namespace: string;
  name: string;
  selector: Record<string, string> | undefined;
  mode: MtlsModeSpec;
  ports: { port: number; mode: MtlsModeSpec }[];
  createdAt: number;
}

const modeArb = fc.constantFrom<MtlsModeSpec>('UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT');
const paArb: fc.Arbitrary<PaArb> = fc
  .record({
    namespace: fc.constantFrom<string>('istio-system', 'foo', 'bar'),
    name: fc.constantFrom<string>('p1', 'p2', 'p3', 'p4'),
    selector: fc.constantFrom<Record<string, string> | undefined>(undefined, { app: 'a' }, { tier: 'web' }, { app: 'other' }),
    mode: modeArb,
    ports: fc.uniqueArray(fc.record({ port: fc.constantFrom(80, 8080, 9090), mode: modeArb }), { selector: (p) => p.port, maxLength: 2 }),
    createdAt: fc.integer({ min: 0, max: 5 }).map((d) => Date.UTC(2024, 0, 1 + d)),
  })
  .map((p) => (p.selector ? p : { ...p, ports: [] })); // validation: port-level mTLS only with a selector
const pasArb = fc.uniqueArray(paArb, { selector: (p) => `${p.namespace}/${p.name}`, maxLength: 6 });

function resolved(pas: PaArb[]): MtlsMode[] {
  const resources: Resource[] = pas.map((p) => ({
    key: { group: 'security.istio.io', kind: 'PeerAuthentication', namespace: p.namespace, name: p.name },
    apiVersion: 'security.istio.io/v1',
    file: 'generated.yaml',
    line: 1,
    notes: [],
    body: {
      kind: 'PeerAuthentication',
      spec: { selector: p.selector, mode: p.mode, portLevelMtls: [...p.ports].sort((a, b) => a.port - b.port), createdAt: p.createdAt },
    },
  }));
  const cfg = compileSecurity(resources, {
    workloads: [WORKLOAD],
    services: [],
    trustDomain: 'cluster.local',
    rootNamespace: 'istio-system',
  });
  const p = SecurityIndex.of(cfg).forWorkload('foo/a');
  return [80, 8080, 9090, 443].map((port) => mtlsModeFor(p, port));
}

test('property: the order the resources are read in never matters', (t) => {
  holds(
    t,
    fc.property(pasArb, (pas) => JSON.stringify(resolved(pas)) === JSON.stringify(resolved([...pas].reverse()))),
    { numRuns: 300 },
  );
});

test('property: a PeerAuthentication in another namespace changes nothing', (t) => {
  holds(
    t,
    fc.property(pasArb, paArb, (pas, extra) => {
      fc.pre(!pas.some((p) => p.namespace === 'bar' && p.name === extra.name));
      return JSON.stringify(resolved(pas)) === JSON.stringify(resolved([...pas, { ...extra, namespace: 'bar' }]));
    }),
    { numRuns: 300 },
  );
});

test('property: the oldest workload policy with a mode decides every port it does not list, whatever the namespace and mesh say', (t) => {
  holds(
    t,
    fc.property(pasArb, modeArb, (pas, mode) => {
      fc.pre(mode !== 'UNSET');
      const oldest: PaArb = { namespace: 'foo', name: 'p0', selector: { app: 'a' }, mode, ports: [], createdAt: 0 };
      return resolved([...pas, oldest]).every((m) => m === mode);
    }),
    { numRuns: 300 },
  );
});

test('property: a newer namespace- or mesh-level policy never changes the result when one exists at its level', (t) => {
  holds(
    t,
    fc.property(pasArb, fc.constantFrom('istio-system', 'foo'), modeArb, (pas, namespace, mode) => {
      fc.pre(pas.some((p) => p.namespace === namespace && !p.selector));
      const newest: PaArb = { namespace, name: 'zz-newest', selector: undefined, mode, ports: [], createdAt: Date.UTC(2030, 0, 1) };
      return JSON.stringify(resolved(pas)) === JSON.stringify(resolved([...pas, newest]));
    }),
    { numRuns: 300 },
  );
});
