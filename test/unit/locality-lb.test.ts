// Locality load balancing as an Istio user configures it: localities come from the nodes'
// topology labels (or a pod's istio-locality label) through the real control-plane path, a
// DestinationRule's localityLbSetting is validated as Istio validates it, and the agent's
// clusters keep traffic in the nearest locality until its endpoints are ejected, then fail
// over in Istio's priority order (or split by `distribute` weights).
import test from 'ava';
import { parseYamlFile } from '../../control/source/files.js';
import { validateDocument, type ValidationResult } from '../../control/validate/validate.js';
import { ClusterSet } from '../../agent/cluster/cluster-set.js';
import type { Cluster, Host } from '../../agent/cluster/cluster.js';
import { availability, groupLoads } from '../../agent/cluster/locality.js';
import { localityMatches } from '../../control/api/locality.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import type { UpstreamConnector } from '../../agent/transport/connector.js';
import { compileYaml, podYaml } from '../helpers/config-yaml.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { seededRandom } from '../helpers/seeded-random.js';

const HOST = 'helloworld.sample.svc.cluster.local';

function validate(yaml: string): ValidationResult {
  const parsed = parseYamlFile('/config/dr.yaml', yaml);
  if ('error' in parsed) throw parsed.error;
  return validateDocument(parsed.documents[0]!);
}

const dr = (trafficPolicy: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: helloworld, namespace: sample}
spec:
  host: helloworld.sample.svc.cluster.local
  trafficPolicy:
${trafficPolicy}`;

const OUTLIER = `    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 1m, maxEjectionPercent: 100}\n`;
const locality = (setting: string) => `    loadBalancer:\n      simple: ROUND_ROBIN\n      localityLbSetting:\n${setting}`;

// ---- validation ----------------------------------------------------------------------------

const rejected: [string, string, string, RegExp][] = [
  [
    'distribute with failover',
    dr(locality(`        distribute: [{from: "r1/z1/*", to: {"r1/z1/*": 100}}]\n        failover: [{from: r1, to: r2}]\n`) + OUTLIER),
    'spec.trafficPolicy.loadBalancer.localityLbSetting',
    /can not simultaneously specify 'distribute' and 'failover'/,
  ],
  [
    'weights that do not sum to 100',
    dr(locality(`        distribute: [{from: "r1/*", to: {"r1/z1/*": 70, "r1/z2/*": 20}}]\n`)),
    'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to',
    /total locality weight 90 != 100/,
  ],
  [
    'a zero weight',
    dr(locality(`        distribute: [{from: "r1/*", to: {"r1/z1/*": 100, "r1/z2/*": 0}}]\n`)),
    'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to["r1/z2/*"]',
    /locality weight must be in range \[1, 100\]/,
  ],
  [
    'a wildcard that is not last',
    dr(locality(`        distribute: [{from: "r1/*/z", to: {"r1": 100}}]\n`)),
    'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].from',
    /wildcard '\*' number can not exceed 1 and must be in the end/,
  ],
  [
    'an empty part',
    dr(locality(`        distribute: [{from: "r1//z", to: {"r1": 100}}]\n`)),
    'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].from',
    /must not contain empty region\/zone\/subzone info/,
  ],
  [
    'overlapping destinations',
    dr(locality(`        distribute: [{from: "r1/*", to: {"r1/*": 50, "r1/z1": 50}}]\n`)),
    'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to["r1/z1"]',
    /locality r1\/z1 overlap with previous specified ones/,
  ],
  [
    'overlapping sources',
    dr(locality(`        distribute:\n        - {from: "r1", to: {"r1": 100}}\n        - {from: "r1/z1/*", to: {"r1": 100}}\n`)),
    'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[1].from',
    /overlap with previous specified ones/,
  ],
  [
    'a failover to the same region',
    dr(locality(`        failover: [{from: r1, to: r1}]\n`) + OUTLIER),
    'spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]',
    /must specify different regions/,
  ],
  [
    'a failover naming a zone',
    dr(locality(`        failover: [{from: r1/z1, to: r2}]\n`) + OUTLIER),
    'spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0].from',
    /failover only specify region/,
  ],
  [
    'failover with a topology label in failoverPriority',
    dr(locality(`        failover: [{from: r1, to: r2}]\n        failoverPriority: [topology.kubernetes.io/zone]\n`) + OUTLIER),
    'spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority',
    /can not simultaneously set 'failover' and topology label 'topology.kubernetes.io\/zone'/,
  ],
];

for (const [what, yaml, field, message] of rejected) {
  test(`localityLbSetting: rejects ${what}, naming ${field}`, (t) => {
    const result = validate(yaml);
    if (result.ok) return t.fail('accepted');
    t.is(result.error.location.field, field);
    t.regex(result.error.message, message);
  });
}

test("localityLbSetting: Istio's documented examples are accepted as written, failover without outlier detection with Istio's warning", (t) => {
  const distribute = validate(
    dr(locality(`        enabled: true\n        distribute:\n        - from: region1/zone1/*\n          to:\n            "region1/zone1/*": 70\n            "region1/zone2/*": 20\n            "region3/zone4/*": 10\n`)),
  );
  t.true(distribute.ok, distribute.ok ? '' : distribute.error.message);
  const failover = validate(dr(locality(`        enabled: true\n        failover:\n        - from: region1\n          to: region2\n`) + OUTLIER));
  t.true(failover.ok);
  if (failover.ok) t.deepEqual(failover.resource.notes, []);
  const noOutlier = validate(dr(locality(`        failover: [{from: region1, to: region2}]\n`)));
  t.true(noOutlier.ok);
  if (noOutlier.ok) t.regex(noOutlier.resource.notes.join('; '), /outlier detection policy must be provided for failover/);
});

test('locality patterns match as Istio matches them: a missing part or a final * matches anything', (t) => {
  t.true(localityMatches('r1', 'r1/z1/s1'));
  t.true(localityMatches('r1/*', 'r1/z1/s1'));
  t.true(localityMatches('r1/z1/*', 'r1/z1/'));
  t.false(localityMatches('r1/z1', 'r1/z2/s1'));
  t.false(localityMatches('r1', 'r10/z1/s1'));
  t.true(localityMatches('*', ''));
});

// ---- localities in the snapshot -----------------------------------------------------------

const node = (name: string, region?: string, zone?: string, subzone?: string) => {
  const labels: Record<string, string> = {};
  if (region) labels['topology.kubernetes.io/region'] = region;
  if (zone) labels['topology.kubernetes.io/zone'] = zone;
  if (subzone) labels['topology.istio.io/subzone'] = subzone;
  return `apiVersion: v1\nkind: Node\nmetadata: {name: ${name}, labels: ${JSON.stringify(labels)}}\nstatus: {addresses: [{type: InternalIP, address: 192.168.50.${name.charCodeAt(name.length - 1) % 200}}]}\n`;
};

const SERVICE = `apiVersion: v1\nkind: Service\nmetadata: {name: helloworld, namespace: sample}\nspec:\n  selector: {app: helloworld}\n  ports: [{name: http, port: 5000}]\n`;
const pod = (name: string, nodeName: string, ip: string, extra: Record<string, string> = {}) =>
  podYaml(name, { ns: 'sample', node: nodeName, ip, labels: { app: 'helloworld', ...extra } });

test("an endpoint's locality is its node's topology labels, or its pod's istio-locality label; none is written where none is known", (t) => {
  const snap = compileYaml([
    node('node-a', 'r1', 'z1', 's1'),
    node('node-b', 'r1', 'z2'),
    node('node-c'),
    SERVICE,
    pod('hw-a', 'node-a', '10.244.1.2'),
    pod('hw-b', 'node-b', '10.244.2.2'),
    pod('hw-c', 'node-c', '10.244.3.2'),
    pod('hw-own', 'node-c', '10.244.3.3', { 'istio-locality': 'r2.z9.rack7' }),
  ]);
  t.deepEqual(
    snap.nodes.map((n) => [n.name, n.locality]),
    [
      ['node-a', 'r1/z1/s1'],
      ['node-b', 'r1/z2/'],
      ['node-c', undefined],
    ],
  );
  const eps = snap.services[0]!.ports[0]!.endpoints;
  t.deepEqual(
    eps.map((e) => [e.workload, e.locality]),
    [
      ['sample/hw-a', 'r1/z1/s1'],
      ['sample/hw-b', 'r1/z2/'],
      ['sample/hw-c', undefined],
      ['sample/hw-own', 'r2/z9/rack7'],
    ],
  );
  t.false('locality' in eps[2]!, 'no field at all: a cluster without topology labels gets the snapshot it got before');
});

// ---- the agent's clusters -----------------------------------------------------------------

const NEVER: UpstreamConnector = {
  connect: () => {
    throw new Error('the balancing tests never dial');
  },
} as unknown as UpstreamConnector;

/** The agent's cluster for helloworld:5000 on `ownNode`, from YAML through the compiler. */
function cluster(ownNode: string, docs: string[]): Cluster {
  const state = new ProxyState(compileYaml(docs));
  const set = new ClusterSet(NEVER, new FakeClock(), ownNode);
  const c = set.get(state, { host: HOST, subset: '', port: 5000, weight: 100, failStatus: 0 } as never, 5000);
  if (!c) throw new Error('no cluster');
  return c;
}

/** Which locality `n` picks land in (random draws from a fixed seed). */
function spread(c: Cluster, n = 2000): Map<string, number> {
  const random = seededRandom(11);
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const h = c.pick({ hash: undefined, random, now: 0 }, undefined)!;
    const l = h.endpoint.locality ?? '-';
    out.set(l, (out.get(l) ?? 0) + 1);
  }
  return out;
}

const eject = (c: Cluster, hosts: Host[]) => {
  for (const h of hosts) c.onResponse(h, 503, 1);
};

const WORLD = [
  node('a1', 'region1', 'zone1'),
  node('a2', 'region1', 'zone1'),
  node('b1', 'region1', 'zone2'),
  node('c1', 'region2', 'zone3'),
  node('d1', 'region3', 'zone4'),
  SERVICE,
  pod('hw-a1', 'a1', '10.244.1.2'),
  pod('hw-a2', 'a2', '10.244.1.3'),
  pod('hw-b1', 'b1', '10.244.2.2'),
  pod('hw-c1', 'c1', '10.244.3.2'),
  pod('hw-d1', 'd1', '10.244.4.2'),
];
const inLocality = (c: Cluster, l: string) => c.hosts.filter((h) => h.endpoint.locality === l);

test("failover, Istio's task as written: traffic stays in the source's zone, then its region, then the failover region, then anywhere", (t) => {
  const c = cluster('a1', [...WORLD, dr(locality(`        failover: [{from: region1, to: region2}]\n`) + OUTLIER)]);
  t.deepEqual([...spread(c)], [['region1/zone1/', 2000]], 'all healthy: only the local zone');
  eject(c, inLocality(c, 'region1/zone1/'));
  t.deepEqual([...spread(c)], [['region1/zone2/', 2000]], 'local zone ejected: the other zone of the region');
  eject(c, inLocality(c, 'region1/zone2/'));
  t.deepEqual([...spread(c)], [['region2/zone3/', 2000]], 'region down: the failover region before region3');
  eject(c, inLocality(c, 'region2/zone3/'));
  t.deepEqual([...spread(c)], [['region3/zone4/', 2000]], 'then what is left');
});

test('failover spills over in proportion: one of two local endpoints ejected keeps 70 % local (Envoy overprovisioning 1.4)', (t) => {
  const c = cluster('a1', [...WORLD, dr(locality(`        failover: [{from: region1, to: region2}]\n`) + OUTLIER)]);
  eject(c, [inLocality(c, 'region1/zone1/')[0]!]);
  const s = spread(c, 4000);
  const local = s.get('region1/zone1/')! / 4000;
  t.true(local > 0.66 && local < 0.74, `local share ${local}`);
  t.is(s.get('region1/zone1/')! + s.get('region1/zone2/')!, 4000, 'the rest goes to the next priority only');
  t.is((c.debug().localities as { groups: unknown[] }).groups.length, 2);
});

test('without outlier detection locality failover does not apply (as in Istio): every endpoint shares the traffic', (t) => {
  const c = cluster('a1', [...WORLD, dr(locality(`        failover: [{from: region1, to: region2}]\n`))]);
  t.is(spread(c).size, 4);
  const mesh = cluster('a1', WORLD);
  t.is(spread(mesh).size, 4, 'no DestinationRule: no outlier detection, no locality priorities');
});

test('the mesh default with outlier detection prefers the local zone; enabled: false turns it off', (t) => {
  const on = cluster('a1', [...WORLD, dr(OUTLIER)]);
  t.deepEqual([...spread(on)], [['region1/zone1/', 2000]]);
  const off = cluster('a1', [...WORLD, dr(locality(`        enabled: false\n`) + OUTLIER)]);
  t.is(spread(off).size, 4);
});

test('a node without topology labels balances over every endpoint, as before localities', (t) => {
  const c = cluster('lone', [...WORLD, node('lone'), dr(OUTLIER)]);
  t.is(spread(c).size, 4);
});

test('distribute: weights from the source locality, shared equally by the localities a pattern takes; unmatched get nothing', (t) => {
  const c = cluster('a1', [
    ...WORLD,
    dr(locality(`        distribute:\n        - from: region1/zone1/*\n          to: {"region1/zone1/*": 60, "region2/*": 30, "region1/zone2/*": 10}\n`)),
  ]);
  const s = spread(c, 10_000);
  const share = (l: string) => (s.get(l) ?? 0) / 10_000;
  t.true(Math.abs(share('region1/zone1/') - 0.6) < 0.03, `zone1 ${share('region1/zone1/')}`);
  t.true(Math.abs(share('region2/zone3/') - 0.3) < 0.03, `region2 ${share('region2/zone3/')}`);
  t.true(Math.abs(share('region1/zone2/') - 0.1) < 0.02, `zone2 ${share('region1/zone2/')}`);
  t.false(s.has('region3/zone4/'), 'region3 is in no pattern');
});

test('failoverPriority on topology labels ranks endpoints by how many labels match in order', (t) => {
  const c = cluster('a1', [
    ...WORLD,
    dr(locality(`        failoverPriority: [topology.kubernetes.io/region, topology.kubernetes.io/zone]\n`) + OUTLIER),
  ]);
  t.deepEqual([...spread(c)], [['region1/zone1/', 2000]]);
  eject(c, inLocality(c, 'region1/zone1/'));
  t.deepEqual([...spread(c)], [['region1/zone2/', 2000]], 'region matches, zone does not');
  eject(c, inLocality(c, 'region1/zone2/'));
  t.is(spread(c).size, 2, 'then both other regions alike');
});

test("priority loads are Envoy's: availability min(1, 1.4 × healthy/total), taken in order, normalised below 100 %", (t) => {
  t.is(availability(5, 10), 0.7);
  t.is(availability(8, 10), 1);
  t.deepEqual(groupLoads('failover', [{ total: 2, healthy: 2, weight: 1 }, { total: 2, healthy: 2, weight: 1 }]), [1, 0]);
  const spill = groupLoads('failover', [{ total: 10, healthy: 5, weight: 1 }, { total: 2, healthy: 2, weight: 1 }]);
  t.is(spill[0], 0.7);
  t.true(Math.abs(spill[1]! - 0.3) < 1e-9);
  const short = groupLoads('failover', [{ total: 10, healthy: 1, weight: 1 }, { total: 10, healthy: 1, weight: 1 }]);
  t.deepEqual(short, [0.5, 0.5], 'together below 100 %: normalised');
  t.deepEqual(groupLoads('failover', [{ total: 1, healthy: 0, weight: 1 }]), [0], 'nothing healthy: the caller panics');
});
