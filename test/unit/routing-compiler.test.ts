// The routing compiler as a specification: VirtualServices, DestinationRules and GAMMA
// HTTPRoutes in force → the RoutingConfig agents apply, with the status notes it leaves.
// Resources go through the real path (YAML → validation → store) before compiling; the last
// test sends a full RoutingConfig through the real gRPC server.
import test from 'ava';
import fc from 'fast-check';
import type { HttpMatch, HttpRoute, RouteTable } from '../../control/api/snapshot-routing.js';
import { compileSnapshot } from '../../control/compile/compiler.js';
import { compileRoutingReport, type RoutingReport } from '../../control/compile/routing.js';
import { compareGatewayEntries, sortGatewayEntries, type GatewayEntry } from '../../control/compile/routing-gateway.js';
import type { Resource } from '../../control/model/resources.js';
import { configDir, controlPlane, firstSnapshot } from '../helpers/control-plane.js';
import { resourcesOf } from '../helpers/config-yaml.js';
import { holds } from '../helpers/property-holds.js';

const service = (name: string, ns = 'default', ports: number[] = [9080]) =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  ports:\n${ports.map((p) => `  - {name: p${p}, port: ${p}}`).join('\n')}\n`;

const resources = (docs: string[]): Resource[] => resourcesOf(docs, '/config/test.yaml');

function compile(docs: string[]): RoutingReport {
  const rs = resources(docs);
  const snap = compileSnapshot(rs);
  return compileRoutingReport(rs, { workloads: snap.workloads, services: snap.services, trustDomain: 'cluster.local', rootNamespace: 'istio-system' });
}

const table = (r: RoutingReport, host: string, consumer = ''): RouteTable | undefined => r.routing.routes.find((t) => t.host === host && t.consumerNamespace === consumer);
const notes = (r: RoutingReport, resource: string) => (r.notes.get(resource) ?? []).join('; ');
const REVIEWS = 'reviews.default.svc.cluster.local';

const reviewsVs = (spec: string, name = 'reviews', ns = 'default', created = '') => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: ${ns}${created ? `, creationTimestamp: "${created}"` : ''}}
spec:
${spec}`;

const SPLIT = `  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: 10
`;

test('a VirtualService short name resolves in its own namespace and a 90/10 split keeps its weights', (t) => {
  const r = compile([service('reviews'), reviewsVs(SPLIT)]);
  const h = table(r, REVIEWS)!.http[0]!;
  t.deepEqual(h.destinations.map((d) => [d.host, d.subset, d.weight]), [
    [REVIEWS, 'v1', 90],
    [REVIEWS, 'v2', 10],
  ]);
  t.is(table(r, REVIEWS)!.source, 'VirtualService default/reviews');
  t.is(table(r, REVIEWS)!.noMatch, 'notFound');
});

test('a short name is read in the VirtualService\'s namespace, not the Service\'s: nothing applies and the status says why', (t) => {
  const r = compile([service('reviews'), reviewsVs(SPLIT, 'reviews', 'other')]);
  t.deepEqual(r.routing.routes, []);
  t.regex(notes(r, 'VirtualService other/reviews'), /host reviews\.other\.svc\.cluster\.local is not a known Service: nothing to apply/);
});

test('a name with a dot is fully qualified (Istio): reviews.default is unknown, with a hint', (t) => {
  const r = compile([service('reviews'), reviewsVs(SPLIT.replace('hosts: [reviews]', 'hosts: [reviews.default]'))]);
  t.regex(notes(r, 'VirtualService default/reviews'), /did you mean reviews\.default\.svc\.cluster\.local\?/);
});

test('subsets no DestinationRule defines are noted; defined ones are not', (t) => {
  const dr = `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n`;
  const r = compile([service('reviews'), reviewsVs(SPLIT), dr]);
  t.is(notes(r, 'VirtualService default/reviews'), `subset v2 of ${REVIEWS} is not defined by any DestinationRule: requests routed there fail (503, no healthy upstream)`);
});

test('two VirtualServices for one host: the oldest wins, the other is told so', (t) => {
  const r = compile([
    service('reviews'),
    reviewsVs(SPLIT, 'newer', 'default', '2024-02-01T00:00:00Z'),
    reviewsVs(SPLIT.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'), 'older', 'default', '2024-01-01T00:00:00Z'),
  ]);
  t.is(table(r, REVIEWS)!.source, 'VirtualService default/older');
  t.deepEqual(table(r, REVIEWS)!.http[0]!.destinations.map((d) => d.weight), [50, 50]);
  t.regex(notes(r, 'VirtualService default/newer'), /not applied to reviews\.default\.svc\.cluster\.local: VirtualService default\/older is older and wins/);
});

test('a VirtualService exported to one namespace yields a table for callers there only', (t) => {
  const r = compile([service('reviews'), reviewsVs(`${SPLIT}  exportTo: [team-a]\n`)]);
  t.deepEqual(r.routing.routes.map((x) => [x.host, x.consumerNamespace]), [[REVIEWS, 'team-a']]);
});

test('a route on one port leaves the other ports their default route', (t) => {
  const r = compile([service('reviews', 'default', [9080, 9090]), reviewsVs(`  hosts: [reviews]\n  http:\n  - match:\n    - port: 9080\n    route:\n    - destination: {host: reviews, subset: v1}\n`)]);
  const http = table(r, REVIEWS)!.http;
  t.deepEqual(http.map((h) => [h.name, h.match.map((m) => m.port)]), [
    ['VirtualService default/reviews rule 0', [9080]],
    ['default route for port 9090', [9090]],
  ]);
  t.deepEqual(http[1]!.destinations.map((d) => [d.host, d.port, d.subset]), [[REVIEWS, 0, '']]);
});

const dr = (spec: string, meta = '') => `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews${meta}}\nspec:\n  host: reviews\n${spec}`;

test('DestinationRule defaults: no outlier detection, LEAST_REQUEST, unlimited pools, 10 s connect timeout, the retry budget on', (t) => {
  const r = compile([service('reviews'), dr('  subsets:\n  - {name: v1, labels: {version: v1}}\n')]);
  const d = r.routing.destinations[0]!;
  t.is(d.host, REVIEWS);
  t.deepEqual(d.policy.loadBalancer, { simple: 'LEAST_REQUEST' });
  t.false(d.policy.outlierDetection.enabled);
  t.like(d.policy.connectionPool, { maxConnections: 4294967295, connectTimeoutMs: 10_000, http1MaxPendingRequests: 4294967295, maxRequestsPerConnection: 0, httpIdleTimeoutMs: 3_600_000 });
  t.deepEqual(d.policy.retryBudget, { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000, minRetryConcurrency: 0 });
  t.deepEqual(d.subsets.map((s) => [s.name, s.labels]), [['v1', { version: 'v1' }]]);
});

test('a subset\'s policy replaces whole groups of the rule\'s; port-level settings apply rule → port → subset → subset port', (t) => {
  const r = compile([
    service('reviews', 'default', [9080, 9090]),
    dr(`  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool:
      tcp: {maxConnections: 100}
    portLevelSettings:
    - port: {number: 9090}
      connectionPool:
        http: {http1MaxPendingRequests: 7}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: X-User}
`),
  ]);
  const d = r.routing.destinations[0]!;
  t.is(d.policy.connectionPool.maxConnections, 100);
  const p9090 = d.ports.find((p) => p.port === 9090)!.policy;
  // "default values will be applied to fields omitted in port-level traffic policies"
  t.is(p9090.connectionPool.maxConnections, 4294967295);
  t.is(p9090.connectionPool.http1MaxPendingRequests, 7);
  t.deepEqual(p9090.loadBalancer, { simple: 'RANDOM' });
  const v2 = d.subsets[0]!;
  t.deepEqual(v2.policy.loadBalancer, { simple: 'LEAST_REQUEST', consistentHash: { kind: 'header', name: 'x-user', cookiePath: '', cookieTtlMs: 0 } });
  t.is(v2.policy.connectionPool.maxConnections, 100, 'inherited: the subset does not write connectionPool');
  t.is(v2.ports.find((p) => p.port === 9090)!.policy.connectionPool.http1MaxPendingRequests, 7);
});

test('two DestinationRules for one host merge: the oldest policy wins, subsets add up', (t) => {
  const r = compile([
    service('reviews'),
    dr('  trafficPolicy:\n    loadBalancer: {simple: RANDOM}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n', ', creationTimestamp: "2024-01-01T00:00:00Z"'),
    dr('  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n  subsets:\n  - {name: v2, labels: {version: v2}}\n', ', namespace: other, creationTimestamp: "2024-02-01T00:00:00Z"').replace('host: reviews', `host: ${REVIEWS}`),
  ]);
  const d = r.routing.destinations[0]!;
  t.deepEqual(d.policy.loadBalancer, { simple: 'RANDOM' });
  t.deepEqual(d.subsets.map((s) => s.name), ['v1', 'v2']);
  t.is(d.source, 'DestinationRule default/reviews, DestinationRule other/reviews');
  t.regex(notes(r, 'DestinationRule other/reviews'), /trafficPolicy for reviews\.default\.svc\.cluster\.local is not applied: DestinationRule default\/reviews is older/);
});

const httpRoute = (name: string, ns: string, rules: string, parent = 'echo', parentNs = '', created = '') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: ${ns}${created ? `, creationTimestamp: "${created}"` : ''}}
spec:
  parentRefs:
  - {group: "", kind: Service, name: ${parent}${parentNs ? `, namespace: ${parentNs}` : ''}}
  rules:
${rules}`;
const ECHO = 'echo.mesh.svc.cluster.local';
const echoServices = [service('echo', 'mesh', [80]), service('echo-v1', 'mesh', [80]), service('echo-v2', 'mesh', [80])];

test('HTTPRoute precedence across routes: exact, longest prefix, method, headers, query params, oldest, name, rule order', (t) => {
  const r = compile([
    ...echoServices,
    httpRoute('b', 'mesh', '  - backendRefs: [{name: echo-v1, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /a}}]\n    backendRefs: [{name: echo-v1, port: 80}]\n', 'echo', '', '2024-02-01T00:00:00Z'),
    httpRoute(
      'a',
      'mesh',
      `  - matches: [{path: {type: PathPrefix, value: /a}, method: GET}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /a/b}}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{path: {type: Exact, value: /a}}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /a}, headers: [{name: x, value: "1"}]}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /a}, queryParams: [{name: q, value: "1"}]}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: echo-v2, port: 80}]
`,
      'echo',
      '',
      '2024-01-01T00:00:00Z',
    ),
  ]);
  t.deepEqual(table(r, ECHO)!.http.map((h) => h.name), [
    'HTTPRoute mesh/a rule 2', // Exact /a
    'HTTPRoute mesh/a rule 1', // longest prefix /a/b
    'HTTPRoute mesh/a rule 0', // method
    'HTTPRoute mesh/a rule 3', // a header match
    'HTTPRoute mesh/a rule 4', // a query param match
    'HTTPRoute mesh/a rule 5', // PathPrefix /a: the older route
    'HTTPRoute mesh/b rule 1',
    'HTTPRoute mesh/b rule 0', // PathPrefix /
  ]);
  t.is(table(r, ECHO)!.noMatch, 'notFound');
});

const arbMatch: fc.Arbitrary<HttpMatch> = fc.record({
  uri: fc.record({ kind: fc.constantFrom('exact' as const, 'pathPrefix' as const, 'regex' as const), value: fc.constantFrom('/', '/a', '/a/b', '/abc', '/a.*'), ignoreCase: fc.constant(false) }),
  method: fc.option(fc.constant({ kind: 'exact' as const, value: 'GET', ignoreCase: false }), { nil: undefined }),
  headers: fc.array(fc.constant({ name: 'x', match: { kind: 'exact' as const, value: '1', ignoreCase: false } }), { maxLength: 2 }),
  withoutHeaders: fc.constant([]),
  queryParams: fc.array(fc.constant({ name: 'q', match: { kind: 'exact' as const, value: '1', ignoreCase: false } }), { maxLength: 2 }),
  port: fc.constantFrom(0, 80),
  sourceLabels: fc.constant({}),
  sourceNamespace: fc.constant(''),
});
const arbEntries: fc.Arbitrary<GatewayEntry[]> = fc
  .uniqueArray(
    fc.record({ match: arbMatch, createdAt: fc.constantFrom('', '2024-01-01T00:00:00.000Z', '2024-02-01T00:00:00.000Z'), nsName: fc.constantFrom('a/x', 'b/y'), ruleIndex: fc.nat(15), matchIndex: fc.nat(3) }),
    { selector: (e) => `${e.nsName}|${e.ruleIndex}|${e.matchIndex}|${e.match.port}`, maxLength: 12 },
  )
  .map((list) => list.map((e) => ({ route: { match: [e.match] } as HttpRoute, createdAt: e.createdAt, nsName: e.nsName, ruleIndex: e.ruleIndex, matchIndex: e.matchIndex })));

test('property: HTTPRoute precedence is a total order — the sorted result does not depend on the input order', (t) => {
  holds(
    t,
    fc.property(arbEntries, fc.nat(), (entries, seed) => {
      const shuffled = [...entries].sort((a, b) => ((a.ruleIndex * 31 + a.matchIndex + seed) % 7) - ((b.ruleIndex * 31 + b.matchIndex + seed) % 7));
      const one = sortGatewayEntries(entries);
      const two = sortGatewayEntries(shuffled);
      return one.every((e, i) => e === two[i]);
    }),
  );
  holds(
    t,
    fc.property(arbEntries, (entries) =>
      entries.every((a) => entries.every((b) => Math.sign(compareGatewayEntries(a, b)) === -Math.sign(compareGatewayEntries(b, a)) && (a === b || compareGatewayEntries(a, b) !== 0))),
    ),
  );
});

test('an HTTPRoute in another namespace is a consumer route: a table for its namespace only', (t) => {
  const r = compile([
    ...echoServices,
    service('client', 'consumer'),
    httpRoute('add-header', 'consumer', '  - filters:\n    - type: ResponseHeaderModifier\n      responseHeaderModifier: {set: [{name: X-Header-Set, value: set}]}\n    backendRefs: [{name: echo, namespace: mesh, port: 80}]\n', 'echo', 'mesh'),
  ]);
  t.deepEqual(r.routing.routes.map((x) => [x.host, x.consumerNamespace]), [[ECHO, 'consumer']]);
  const h = table(r, ECHO, 'consumer')!.http[0]!;
  t.deepEqual(h.headers.response.set, { 'x-header-set': 'set' });
  t.deepEqual(h.destinations.map((d) => [d.host, d.failStatus]), [[ECHO, 0]], 'its parent Service needs no ReferenceGrant');
});

test('a backendRef to a missing Service answers 500 for its share; a rule with no backend answers 500', (t) => {
  const r = compile([...echoServices, httpRoute('split', 'mesh', '  - backendRefs: [{name: echo-v1, port: 80}, {name: nope, port: 80}]\n  - matches: [{path: {value: /none}}]\n')]);
  const [none, split] = table(r, ECHO)!.http;
  t.deepEqual(split!.destinations.map((d) => [d.weight, d.failStatus]), [
    [1, 0],
    [1, 500],
  ]);
  t.deepEqual(none!.directResponse, { status: 500, body: '' });
  t.regex(notes(r, 'HTTPRoute mesh/split'), /backendRef Service mesh\/nope not found: its share of requests is answered 500/);
});

test('a cross-namespace backendRef needs a ReferenceGrant', (t) => {
  const grant = `apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: allow, namespace: other}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: mesh}]\n  to: [{group: "", kind: Service}]\n`;
  const docs = [...echoServices, service('far', 'other', [80]), httpRoute('x', 'mesh', '  - backendRefs: [{name: far, namespace: other, port: 80}]\n')];
  t.is(table(compile(docs), ECHO)!.http[0]!.destinations[0]!.failStatus, 500);
  t.is(table(compile([...docs, grant]), ECHO)!.http[0]!.destinations[0]!.failStatus, 0);
});

test('an HTTPRoute attached to a Service wins over its VirtualService, which says so', (t) => {
  const vs = reviewsVs(`  hosts: [echo]\n  http:\n  - route:\n    - destination: {host: echo-v1}\n`, 'echo', 'mesh');
  const r = compile([...echoServices, vs, httpRoute('echo', 'mesh', '  - backendRefs: [{name: echo-v2, port: 80}]\n')]);
  t.is(table(r, ECHO)!.source, 'HTTPRoute mesh/echo');
  t.regex(notes(r, 'VirtualService mesh/echo'), /the Service is routed by its Gateway API HTTPRoute \(HTTPRoute mesh\/echo\), which wins over VirtualServices/);
});

test('PEAK_EWMA is selected by annotation and inherited by subsets that do not set a balancer', (t) => {
  const r = compile([service('reviews'), dr('  subsets:\n  - {name: v1, labels: {version: v1}}\n', ', annotations: {nodemesh.io/load-balancer: PEAK_EWMA}')]);
  t.deepEqual(r.routing.destinations[0]!.policy.loadBalancer, { simple: 'PEAK_EWMA' });
  t.deepEqual(r.routing.destinations[0]!.subsets[0]!.policy.loadBalancer, { simple: 'PEAK_EWMA' });
});

test('a full RoutingConfig reaches an agent through the real gRPC server unchanged', async (t) => {
  const docs = [
    service('reviews', 'default', [9080, 9090]),
    reviewsVs(`  hosts: [reviews]
  http:
  - name: canary
    match:
    - headers: {end-user: {exact: jason}, x-dbg: {}}
      uri: {regex: "(?i)/api/v[0-9]+"}
      queryParams: {q: {prefix: a}}
      withoutHeaders: {x-skip: {exact: "1"}}
      sourceLabels: {app: web}
      sourceNamespace: front
      port: 9080
    fault:
      delay: {fixedDelay: 7s, percentage: {value: 12.5}}
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.5}}
    mirror: {host: reviews, subset: v3}
    mirrorPercentage: {value: 33.3}
    headers:
      request: {set: {x-a: "1"}, add: {x-b: "2"}, remove: [x-c]}
    rewrite: {uriRegexRewrite: {match: "^/api/(.*)", rewrite: "/\\\\1"}, authority: reviews.internal}
    route:
    - destination: {host: reviews, subset: v1, port: {number: 9090}}
      weight: 70
      headers: {response: {set: {x-v: v1}}}
    - destination: {host: reviews, subset: v2}
      weight: 30
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - directResponse: {status: 503, body: {string: "down"}}
  tcp:
  - match: [{port: 9090}]
    route:
    - destination: {host: reviews}
`),
    dr(`  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, path: /, ttl: 8760h}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 400s, maxEjectionPercent: 50}
    retryBudget: {percent: 12.5, minRetryConcurrency: 2, budgetInterval: 5s}
    portLevelSettings:
    - port: {number: 9090}
      connectionPool: {tcp: {maxConnections: 3}}
  subsets:
  - {name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
  - {name: v2, labels: {version: v2}}
`, ', annotations: {nodemesh.io/latency-ejection: "3"}'),
  ];
  const cp = await controlPlane(t, { configDir: await configDir(t, { 'config.yaml': docs.join('---\n') }), rescanMs: 0 });
  t.deepEqual(cp.status().resources.filter((s) => s.state !== 'Accepted'), []);
  const sent = cp.snapshot()!;
  t.is(sent.routing.routes[0]!.http.length, 3, 'rules 1 and 2 match every port: no default route is added');
  const received = await firstSnapshot(`127.0.0.1:${cp.grpcPort}`);
  t.deepEqual(received.routing, sent.routing);
  t.is(received.routing.destinations[0]!.policy.loadBalancer.consistentHash!.cookieTtlMs, 8760 * 3_600_000);
  t.deepEqual(received.routing.destinations[0]!.policy.outlierDetection.latencyEjection, { factor: 3, minRequests: 20 });
});

test('latency-based ejection (beyond Istio) is set by annotation on a rule with outlierDetection, and says so where it cannot apply', (t) => {
  const on = compile([
    service('reviews'),
    dr('  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 3}\n', ', annotations: {nodemesh.io/latency-ejection: "2.5"}'),
  ]);
  t.deepEqual(on.routing.destinations[0]!.policy.outlierDetection.latencyEjection, { factor: 2.5, minRequests: 20 });
  const offDocs = [service('reviews'), dr('  subsets:\n  - {name: v1, labels: {version: v1}}\n', ', annotations: {nodemesh.io/latency-ejection: "3"}')];
  const off = compile(offDocs);
  t.is(off.routing.destinations[0]!.policy.outlierDetection.latencyEjection, undefined);
  // said in the rule's status (a validation note), never a silent no-op
  const rule = resources(offDocs).find((r) => r.key.kind === 'DestinationRule')!;
  t.regex(rule.notes.join('; '), /nodemesh\.io\/latency-ejection is not applied: it needs spec\.trafficPolicy\.outlierDetection/);
});

test('a latency-ejection annotation that is not a factor above 1 is rejected, naming the annotation', (t) => {
  t.throws(() => resources([service('reviews'), dr('  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 3}\n', ', annotations: {nodemesh.io/latency-ejection: "fast"}')]), {
    message: /expected a factor above 1 .*found "fast"/,
  });
});
