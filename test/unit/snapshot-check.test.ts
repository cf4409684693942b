// A snapshot is checked when it arrives: a valid one reaches the agent unchanged; one with a
// defect is refused, naming the field, while the agent keeps its last good snapshot and the
// stream goes on. Over real gRPC: a Discovery server on 127.0.0.1 that sends what each test
// gives it, as a control plane with a bug (or of another release) would. Those tests run one
// at a time, so as not to load the machine for the timing-sensitive tests beside them.
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { watchSnapshots } from '../../control/api/discovery-client.js';
import { discoveryService, type Snapshot } from '../../control/api/snapshot.js';
import { InvalidSnapshotError, checkSnapshot } from '../../control/api/snapshot-check.js';
import { defaultTrafficPolicy, emptyHeaderOps, emptyRouting } from '../../control/api/snapshot-routing.js';
import { emptySecurity } from '../../control/api/snapshot-security.js';
import type { NodemeshError } from '../../common/errors.js';
import { fullSnapshot } from '../helpers/snapshot-fixture.js';

/** The version of the last snapshot every test server sends: once it arrives, everything before it has been handled. */
const END = 1_000_000;

/**
 * A Discovery server that writes `messages` on every Watch, then a valid snapshot of version
 * END, and keeps the stream open.
 */
async function discoveryServer(t: ExecutionContext, messages: readonly unknown[]): Promise<number> {
  const server = new grpc.Server();
  server.addService(discoveryService().service, {
    watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      for (const m of [...messages, fullSnapshot(END)]) call.write(m);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());
  return port;
}

interface Received {
  snapshots: Snapshot[];
  errors: NodemeshError[];
  rejections: { err: InvalidSnapshotError; holding: number | undefined }[];
  rejected: number;
}

/**
 * An agent's watch on `port` until the server's last snapshot (END) arrives: the stream is in
 * order, so every message the test sent has been handled by then. END is left out of the result.
 */
async function receive(t: ExecutionContext, port: number): Promise<Received> {
  const out: Received = { snapshots: [], errors: [], rejections: [], rejected: 0 };
  let done!: () => void;
  const enough = new Promise<void>((resolve) => (done = resolve));
  const watch = watchSnapshots({
    address: `127.0.0.1:${port}`,
    node: 'node-a',
    initialBackoffMs: 50,
    maxBackoffMs: 100,
    onSnapshot: (s) => {
      if (s.version === END) done();
      else out.snapshots.push(s);
    },
    onError: (e) => out.errors.push(e),
    onRejected: (err) => out.rejections.push({ err, holding: watch.snapshot()?.version }),
  });
  t.teardown(() => watch.close());
  const timer = setTimeout(done, 20_000);
  await enough;
  clearTimeout(timer);
  out.rejected = watch.rejected();
  return out;
}

/** The fixture as a control plane would hand it to grpc-js (a plain object, version a number). */
// loosely typed: each test reaches into the message by path to plant its defect
type Wire = Record<string, any>;
const wire = (version: number): Wire => fullSnapshot(version) as unknown as Wire;

test.serial('a valid snapshot reaches the agent unchanged', async (t) => {
  const sent = fullSnapshot(7);
  const port = await discoveryServer(t, [sent]);
  const r = await receive(t, port);
  t.deepEqual(r.snapshots, [sent]);
  t.deepEqual(r.errors, []);
  t.is(r.rejected, 0);
});

test.serial('a snapshot whose lists are all empty is valid (proto3 defaults)', async (t) => {
  const port = await discoveryServer(t, [{ version: 1 }]);
  const r = await receive(t, port);
  t.deepEqual(r.snapshots, [
    {
      version: 1,
      generatedAt: '',
      workloads: [],
      services: [],
      nodes: [],
      namespaces: [],
      routing: emptyRouting(),
      security: emptySecurity(),
      trustBundle: [],
      telemetry: [],
      gateways: [],
      trustDomains: [],
    },
  ]);
  t.deepEqual(r.errors, []);
});

test.serial(
  'an absent sub-message whose absence has one meaning arrives filled in: no routing, no security, no header operations, no retries, mesh-default policy parts',
  async (t) => {
    const a = wire(1);
    a.routing = null;
    a.security = null;
    const b = wire(2);
    const route = b.routing.routes[2].http[0];
    route.headers = null;
    route.retries = null;
    route.destinations[0].headers.request = null;
    const policy = b.routing.destinations[0].policy;
    policy.connectionPool = null;
    policy.retryBudget = null;
    const port = await discoveryServer(t, [a, b]);
    const r = await receive(t, port);
    t.deepEqual(r.errors, []);
    t.deepEqual(r.snapshots[0]!.routing, emptyRouting());
    t.deepEqual(r.snapshots[0]!.security, emptySecurity());
    const got = r.snapshots[1]!.routing;
    t.deepEqual(got.routes[2]!.http[0]!.headers, { request: emptyHeaderOps(), response: emptyHeaderOps() });
    t.deepEqual(got.routes[2]!.http[0]!.retries, {
      attempts: 0,
      perTryTimeoutMs: 0,
      retryOn: [],
      retriableStatusCodes: [],
      backoffBaseMs: 0,
      backoffMaxMs: 0,
    });
    t.deepEqual(got.routes[2]!.http[0]!.destinations[0]!.headers.request, emptyHeaderOps());
    t.deepEqual(got.destinations[0]!.policy.connectionPool, defaultTrafficPolicy().connectionPool);
    t.deepEqual(got.destinations[0]!.policy.retryBudget, defaultTrafficPolicy().retryBudget);
    t.deepEqual(got.destinations[0]!.policy.loadBalancer, { simple: 'ROUND_ROBIN' }, 'what was sent stays');
  },
);

/**
 * Versions 1 (good), 2 (with the defect), 3 (good) on one stream: 1 and 3 are delivered, 2 is
 * refused naming `field` while 1 is held, and the stream is never dropped.
 */
const refused = test.macro({
  async exec(t, defect: (s: Wire) => void, field: string, problem: RegExp) {
    const bad = wire(2);
    defect(bad);
    const port = await discoveryServer(t, [wire(1), bad, wire(3)]);
    const r = await receive(t, port);
    t.deepEqual(
      r.snapshots.map((s) => s.version),
      [1, 3],
    );
    t.is(r.rejections.length, 1);
    const { err, holding } = r.rejections[0]!;
    t.is(err.code, 'NM_ERR_CONTROL');
    t.is(err.field, field);
    t.regex(err.problem, problem);
    t.is(holding, 1, 'the last good snapshot is kept');
    t.is(r.rejected, 1);
    t.is(r.errors.length, 1, 'the refusal is reported, and the stream was never dropped');
    const quoted = (x: string) => x.replace(/[[\].]/g, '\\$&');
    t.regex(
      r.errors[0]!.message,
      new RegExp(`snapshot version ${bad.version} refused, field ${quoted(field)}: .*keeping snapshot version 1`),
    );
  },
  title: (what = '') => `refused, naming the field, the last good snapshot kept: ${what}`,
});

// services: api, db, web (by name); routes: api, db, web (by host); authorization policies:
// deny-debug, web; security workloads: client, web-1, web-2
test.serial('a version beyond 2^53', refused, (s) => (s.version = '9007199254740993'), 'version', /is not a version/);
test.serial(
  'a workload IP that is no IP',
  refused,
  (s) => (s.workloads[1].ip = '10.244.0.300'),
  'workloads[1].ip',
  /"10\.244\.0\.300" is not an IP address/,
);
test.serial('a workload without an IP', refused, (s) => (s.workloads[0].ip = ''), 'workloads[0].ip', /"" is not an IP address/);
test.serial('a workload without a uid', refused, (s) => (s.workloads[2].uid = ''), 'workloads[2].uid', /is empty/);
test.serial('a workload without a SPIFFE ID', refused, (s) => (s.workloads[0].spiffeId = ''), 'workloads[0].spiffeId', /is empty/);
test.serial('a Service without a hostname', refused, (s) => (s.services[2].hostname = ''), 'services[2].hostname', /is empty/);
test.serial(
  'a cluster IP that is no IP',
  refused,
  (s) => (s.services[0].clusterIp = 'ten.zero'),
  'services[0].clusterIp',
  /not an IP address/,
);
test.serial(
  'a Service port 0',
  refused,
  (s) => (s.services[2].ports[1].port = 0),
  'services[2].ports[1].port',
  /0 is not a port \(1-65535\)/,
);
test.serial(
  'a target port above 65535',
  refused,
  (s) => (s.services[2].ports[0].targetPort = 65536),
  'services[2].ports[0].targetPort',
  /65536 is not a port/,
);
test.serial(
  'an endpoint port above 65535',
  refused,
  (s) => (s.services[2].ports[0].endpoints[1].port = 70000),
  'services[2].ports[0].endpoints[1].port',
  /70000 is not a port/,
);
test.serial(
  'an endpoint IP that is no IP',
  refused,
  (s) => (s.services[0].ports[0].endpoints[0].ip = 'web-1'),
  'services[0].ports[0].endpoints[0].ip',
  /not an IP/,
);
test.serial('a node IP that is no IP', refused, (s) => (s.nodes[0].ip = '192.168.50'), 'nodes[0].ip', /not an IP address/);
test.serial('a node without a name', refused, (s) => (s.nodes[1].name = ''), 'nodes[1].name', /is empty/);
test.serial(
  'an empty trust bundle entry',
  refused,
  (s) => (s.trustBundle = [s.trustBundle[0], '']),
  'trustBundle[1]',
  /is empty: expected a PEM/,
);
test.serial(
  'an unknown string-match kind',
  refused,
  (s) => (s.routing.routes[2].http[0].match[0].uri.kind = 'glob'),
  'routing.routes[2].http[0].match[0].uri.kind',
  /"glob" is not one of exact, prefix, regex, present, pathPrefix/,
);
test.serial(
  'a header match without its match',
  refused,
  (s) => (s.routing.routes[2].http[0].match[0].headers[0].match = null),
  'routing.routes[2].http[0].match[0].headers[0].match',
  /is missing/,
);
test.serial(
  'an unknown no-match action',
  refused,
  (s) => (s.routing.routes[1].noMatch = ''),
  'routing.routes[1].noMatch',
  /"" is not one of passthrough, notFound/,
);
test.serial('a route table without a host', refused, (s) => (s.routing.routes[0].host = ''), 'routing.routes[0].host', /is empty/);
test.serial(
  'a destination without a host',
  refused,
  (s) => (s.routing.routes[1].tcp[0].destinations[0].host = ''),
  'routing.routes[1].tcp[0].destinations[0].host',
  /is empty/,
);
test.serial(
  'a destination port above 65535',
  refused,
  (s) => (s.routing.routes[2].http[0].destinations[1].port = 80_000),
  'routing.routes[2].http[0].destinations[1].port',
  /not a port \(1-65535, or 0: any\)/,
);
test.serial(
  'a fail status that is no HTTP status',
  refused,
  (s) => (s.routing.routes[0].http[0].destinations[1].failStatus = 1000),
  'routing.routes[0].http[0].destinations[1].failStatus',
  /1000 is not an HTTP status/,
);
test.serial(
  'a direct response status that is no HTTP status',
  refused,
  (s) => (s.routing.routes[2].http[2].directResponse.status = 42),
  'routing.routes[2].http[2].directResponse.status',
  /42 is not an HTTP status/,
);
test.serial(
  'a retriable status code that is no HTTP status',
  refused,
  (s) => (s.routing.routes[2].http[1].retries.retriableStatusCodes = [503, 0]),
  'routing.routes[2].http[1].retries.retriableStatusCodes[1]',
  /0 is not an HTTP status/,
);
test.serial(
  'a fault percentage that is not a number',
  refused,
  (s) => (s.routing.routes[2].http[0].fault.delay.percentage = NaN),
  'routing.routes[2].http[0].fault.delay.percentage',
  /NaN is not a percentage \(0-100\)/,
);
test.serial(
  'a mirror percentage above 100',
  refused,
  (s) => (s.routing.routes[2].http[0].mirrors[0].percentage = 150),
  'routing.routes[2].http[0].mirrors[0].percentage',
  /150 is not a percentage/,
);
test.serial(
  'a mirror without a destination',
  refused,
  (s) => (s.routing.routes[2].http[0].mirrors[0].destination = null),
  'routing.routes[2].http[0].mirrors[0].destination',
  /is missing/,
);
test.serial(
  'a destination policy without its policy',
  refused,
  (s) => (s.routing.destinations[0].policy = null),
  'routing.destinations[0].policy',
  /is missing/,
);
test.serial(
  'an unknown load-balancer policy',
  refused,
  (s) => (s.routing.destinations[0].subsets[1].policy.loadBalancer.simple = 'LEAST_CONN'),
  'routing.destinations[0].subsets[1].policy.loadBalancer.simple',
  /"LEAST_CONN" is not one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, PASSTHROUGH, PEAK_EWMA/,
);
test.serial(
  'an unknown consistent-hash kind',
  refused,
  (s) => (s.routing.destinations[0].ports[0].policy.loadBalancer.consistentHash.kind = 'ringHash'),
  'routing.destinations[0].ports[0].policy.loadBalancer.consistentHash.kind',
  /"ringHash" is not one of header, cookie, sourceIp, queryParam/,
);
test.serial(
  'a latency-ejection factor of 1',
  refused,
  (s) => (s.routing.destinations[0].policy.outlierDetection.latencyEjection.factor = 1),
  'routing.destinations[0].policy.outlierDetection.latencyEjection.factor',
  /1 is not a factor above 1/,
);
test.serial(
  'a port policy for port 0',
  refused,
  (s) => (s.routing.destinations[0].ports[0].port = 0),
  'routing.destinations[0].ports[0].port',
  /0 is not a port/,
);
test.serial(
  'a subset without a name',
  refused,
  (s) => (s.routing.destinations[0].subsets[0].name = ''),
  'routing.destinations[0].subsets[0].name',
  /is empty/,
);
test.serial(
  'an unknown mTLS mode',
  refused,
  (s) => (s.security.workloads[1].mtlsMode = 'UNSET'),
  'security.workloads[1].mtlsMode',
  /"UNSET" is not one of STRICT, PERMISSIVE, DISABLE/,
);
test.serial(
  'a port-level mTLS mode for port 0',
  refused,
  (s) => (s.security.workloads[2].portMtls[0].port = 0),
  'security.workloads[2].portMtls[0].port',
  /0 is not a port/,
);
test.serial(
  'an unknown authorization action',
  refused,
  (s) => (s.security.authorizationPolicies[0].action = 'REJECT'),
  'security.authorizationPolicies[0].action',
  /"REJECT" is not one of ALLOW, DENY, AUDIT, CUSTOM/,
);
test.serial(
  'an unknown attribute',
  refused,
  (s) => (s.security.authorizationPolicies[1].rules[0].from[0].matches[0].attribute = 'source.name'),
  'security.authorizationPolicies[1].rules[0].from[0].matches[0].attribute',
  /"source\.name" is not one of source\.principal, /,
);
test.serial(
  'a CIDR that is none',
  refused,
  (s) => (s.security.authorizationPolicies[1].rules[0].from[0].matches[1].notValues[0].value = '10.244.9.9/33'),
  'security.authorizationPolicies[1].rules[0].from[0].matches[1].notValues[0].value',
  /"10\.244\.9\.9\/33" is not an IP address or CIDR range/,
);
test.serial(
  'an unknown value-match kind',
  refused,
  (s) => (s.security.authorizationPolicies[1].rules[0].when[0].values[1].kind = 'glob'),
  'security.authorizationPolicies[1].rules[0].when[0].values[1].kind',
  /"glob" is not one of exact, prefix, suffix, presence, template, cidr/,
);
test.serial(
  'an authorization policy without a name',
  refused,
  (s) => (s.security.authorizationPolicies[1].name = ''),
  'security.authorizationPolicies[1].name',
  /is empty/,
);

// ---- what a decoder never produces, checked all the same (checkSnapshot takes unknown) ----

const structure = test.macro({
  exec(t, msg: (s: Wire) => unknown, field: string, problem: RegExp) {
    const err = t.throws(() => checkSnapshot(msg(wire(1))), { instanceOf: InvalidSnapshotError });
    t.is(err?.field, field);
    t.regex(err?.problem ?? '', problem);
    t.regex(err?.message ?? '', /^snapshot field /);
  },
  title: (what = '') => `structure checked too: ${what}`,
});

test('no message at all', structure, () => null, '(the message)', /is missing/);
test('a list for a message', structure, () => [], '(the message)', /expected a message, found a list/);
test('a version that is no number', structure, (s) => ({ ...s, version: 'v7' }), 'version', /"v7" is not a version/);
test('a negative version', structure, (s) => ({ ...s, version: -1 }), 'version', /-1 is not a version/);
test('a message for a list', structure, (s) => ({ ...s, workloads: {} }), 'workloads', /expected a list, found a message/);
test('a number for a string', structure, (s) => ((s.workloads[0].node = 7), s), 'workloads[0].node', /expected a string, found 7/);
test(
  'a label value that is no string',
  structure,
  (s) => ((s.workloads[1].labels.app = 1), s),
  'workloads[1].labels["app"]',
  /expected a string, found 1/,
);
test(
  'a string for a boolean',
  structure,
  (s) => ((s.workloads[1].meshed = 'yes'), s),
  'workloads[1].meshed',
  /expected true or false, found "yes"/,
);
test(
  'a fraction for a count',
  structure,
  (s) => ((s.routing.routes[2].http[0].timeoutMs = 1.5), s),
  'routing.routes[2].http[0].timeoutMs',
  /1\.5 is not a uint32/,
);
test(
  'null for an optional message',
  structure,
  (s) => ((s.routing.routes[2].http[1].fault = null), s),
  'routing.routes[2].http[1].fault',
  /is null/,
);

test('the check works in place: a valid message comes back as itself, its version a number', (t) => {
  const msg = { ...wire(1), version: '12' };
  const expected = { ...structuredClone(msg), version: 12 };
  const got = checkSnapshot(msg);
  t.is(got as unknown, msg);
  t.deepEqual(got as unknown, expected);
});

// How long a check takes is a benchmark's business (speed is never a timed assertion in a test).
test('a snapshot of 5000 workloads and 1000 Services with 5 endpoints each passes the check unchanged', (t) => {
  const s = wire(1);
  const [w] = s.workloads;
  const [sec] = s.security.workloads;
  const [svc] = s.services;
  s.workloads = [];
  s.security.workloads = [];
  s.services = [];
  for (let i = 0; i < 5000; i++) {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    s.workloads.push({ ...w, uid: `ns/pod-${i}`, name: `pod-${i}`, ip, labels: { app: `app-${i % 1000}`, version: 'v1' } });
    s.security.workloads.push({ ...sec, workload: `ns/pod-${i}` });
  }
  for (let i = 0; i < 1000; i++) {
    const endpoints = Array.from({ length: 5 }, (_, k) => ({
      ip: s.workloads[i * 5 + k].ip,
      port: 8080,
      workload: `ns/pod-${i * 5 + k}`,
      node: 'node-a',
    }));
    s.services.push({ ...svc, name: `svc-${i}`, hostname: `svc-${i}.ns.svc.cluster.local`, ports: [{ ...svc.ports[0], endpoints }] });
  }
  const checked = checkSnapshot(structuredClone(s));
  t.is(checked.workloads.length, 5000);
  t.is(checked.services.length, 1000);
  t.deepEqual(checked.services[999]!.ports[0]!.endpoints.map((e) => e.workload), [4995, 4996, 4997, 4998, 4999].map((i) => `ns/pod-${i}`));
});
