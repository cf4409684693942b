// AuthorizationPolicy evaluation as a specification: Istio's documented examples (the
// AuthorizationPolicy reference, istio.io tasks, and the upstream YAML in
// ../shared/conformance/security/) evaluated as their docs say, the combination rules one
// by one, and properties over random policies: DENY beats ALLOW, AUDIT never changes a
// decision, a policy for another workload changes nothing, TCP evaluation is fail-safe.
// Policies go through the real path: YAML → validation → compiler → agent index.
import test from 'ava';
import fc from 'fast-check';
import {
  ALLOWED_WITHOUT_POLICY,
  authorizeConnection,
  authorizeRequest,
  hasRules,
  SecurityIndex,
  type Decision,
  type HttpAttributes,
  type L4Attributes,
  type WorkloadPolicy,
} from '../../agent/policy/authorization.js';
import { normalizePath } from '../../agent/policy/authorization-match.js';
import { compileSecurity } from '../../control/compile/security.js';
import type {
  AttributeMatch,
  AuthorizationAction,
  AuthorizationPolicy,
  AuthorizationRule,
  SecurityConfig,
  ValueMatch,
  WorkloadSecurity,
} from '../../control/api/snapshot-security.js';
import type { Workload } from '../../control/api/snapshot.js';
import type { Resource } from '../../control/model/resources.js';
import { authorizationPolicy, compileYaml, podYaml, policyOf } from '../helpers/config-yaml.js';
import { securitySample, securitySampleTest } from '../helpers/conformance-samples.js';
import { holds } from '../helpers/property-holds.js';

interface Req {
  principal?: string;
  ip?: string;
  port?: number;
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
}

function l4Of(r: Req): L4Attributes {
  return {
    sourcePrincipal: r.principal,
    sourceIp: r.ip ?? '10.244.1.5',
    destinationIp: '10.244.0.9',
    destinationPort: r.port ?? 80,
    mtls: r.principal !== undefined,
  };
}

function httpOf(r: Req): HttpAttributes {
  const headers: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = [v];
  return { method: r.method ?? 'GET', path: r.path ?? '/', host: r.host ?? 'server.shop.svc.cluster.local', headers };
}

/** What the destination proxy decides for one HTTP request on a new connection (as deliverInbound does). */
function http(p: WorkloadPolicy, r: Req): Decision {
  const c = authorizeConnection(p, l4Of(r));
  if (c.decision === 'deny' || !c.needsL7) return c.decision;
  return authorizeRequest(p, l4Of(r), httpOf(r)).decision;
}

/** What it decides for a stream that is not HTTP. */
function tcp(p: WorkloadPolicy, r: Req): Decision {
  return authorizeConnection(p, l4Of(r), { protocol: 'tcp' }).decision;
}

const sa = (ns: string, name: string) => `spiffe://cluster.local/ns/${ns}/sa/${name}`;

// --- the AuthorizationPolicy reference's examples ---------------------------------------

/** The reference's usual setting: pod httpbin in namespace foo under the policy foo/httpbin with `spec`. */
function fooHttpbin(spec: string): WorkloadPolicy {
  return policyOf(compileYaml([podYaml('httpbin', { ns: 'foo' }), authorizationPolicy('foo', 'httpbin', spec)]), 'foo/httpbin');
}

test('reference: DENY from namespace dev to POST, on every workload of foo', (t) => {
  const p = fooHttpbin(`action: DENY
  rules:
  - from:
    - source:
        namespaces: ["dev"]
    to:
    - operation:
        methods: ["POST"]`);
  t.is(http(p, { principal: sa('dev', 'x'), method: 'POST' }), 'deny');
  t.is(http(p, { principal: sa('dev', 'x'), method: 'GET' }), 'allow');
  t.is(http(p, { principal: sa('prod', 'x'), method: 'POST' }), 'allow');
  t.is(http(p, { method: 'POST' }), 'allow', 'plaintext has no namespace: the source does not match');
});

test('reference: DENY POST on port 8080 — for TCP "all TCP traffic on port 8080 would be denied"', (t) => {
  const p = fooHttpbin(`action: DENY
  rules:
  - to:
    - operation:
        methods: ["POST"]
        ports: ["8080"]`);
  t.is(http(p, { port: 8080, method: 'POST' }), 'deny');
  t.is(http(p, { port: 8080, method: 'GET' }), 'allow');
  t.is(http(p, { port: 9090, method: 'POST' }), 'allow');
  t.is(tcp(p, { port: 8080 }), 'deny');
  t.is(tcp(p, { port: 9090 }), 'allow');
});

test('reference: AUDIT of GET /user/profile/* never changes the decision and reports the match', (t) => {
  const s = compileYaml([
    podYaml('api', { ns: 'ns1', labels: { app: 'myapi' } }),
    authorizationPolicy(
      'ns1',
      'anyname',
      `selector:
    matchLabels:
      app: myapi
  action: AUDIT
  rules:
  - to:
    - operation:
        methods: ["GET"]
        paths: ["/user/profile/*"]`,
    ),
  ]);
  const p = policyOf(s, 'ns1/api');
  t.false(p.http, 'AUDIT alone does not make the proxy parse HTTP');
  const r = authorizeRequest(p, l4Of({}), httpOf({ method: 'GET', path: '/user/profile/42' }));
  t.is(r.decision, 'allow');
  t.deepEqual(r.audited, ['ns1/anyname']);
  t.deepEqual(authorizeRequest(p, l4Of({}), httpOf({ method: 'GET', path: '/other' })).audited, []);
});

test('a workload no policy selects allows every request with one frozen answer; one policy of any action (AUDIT too) is evaluated', (t) => {
  const s = compileYaml([
    podYaml('api', { ns: 'ns1' }),
    podYaml('web', { ns: 'ns2' }),
    authorizationPolicy(
      'ns2',
      'audit-web',
      `action: AUDIT
  rules:
  - to:
    - operation:
        methods: ["GET"]`,
    ),
  ]);
  const none = policyOf(s, 'ns1/api');
  t.false(hasRules(none));
  const r = authorizeRequest(none, l4Of({ principal: sa('ns9', 'x') }), httpOf({ method: 'DELETE', path: '/%2e%2e/x' }));
  t.is(r, ALLOWED_WITHOUT_POLICY);
  t.deepEqual({ ...r }, { decision: 'allow', reason: 'no-allow-policy', audited: [], dryRunMatched: [] });
  t.throws(() => (r.audited as string[]).push('x'), { instanceOf: TypeError }, 'shared: nobody may add to it');
  const audited = policyOf(s, 'ns2/web');
  t.true(hasRules(audited));
  t.deepEqual(authorizeRequest(audited, l4Of({}), httpOf({ method: 'GET', path: '/' })).audited, ['ns2/audit-web']);
});

test('reference: allow-nothing (spec {}) denies all requests to the namespace; allow-all (rules: [{}]) allows them', (t) => {
  const s = compileYaml([
    podYaml('a', { ns: 'foo' }),
    podYaml('b', { ns: 'bar' }),
    authorizationPolicy('foo', 'allow-nothing', '{}'),
    authorizationPolicy(
      'bar',
      'allow-all',
      `rules:
  - {}`,
    ),
  ]);
  t.is(http(policyOf(s, 'foo/a'), { principal: sa('foo', 'x') }), 'deny');
  t.is(tcp(policyOf(s, 'foo/a'), {}), 'deny');
  t.is(http(policyOf(s, 'bar/b'), {}), 'allow');
  t.is(tcp(policyOf(s, 'bar/b'), {}), 'allow');
});

test('reference: allow-nothing with a selector denies only the selected workloads; in the root namespace it selects across namespaces', (t) => {
  const s = compileYaml([
    podYaml('httpbin', { ns: 'bar', labels: { app: 'httpbin' } }),
    podYaml('other', { ns: 'bar', labels: { app: 'other' } }),
    podYaml('v1', { ns: 'baz', labels: { version: 'v1' } }),
    podYaml('v2', { ns: 'baz', labels: { version: 'v2' } }),
    authorizationPolicy(
      'bar',
      'allow-nothing',
      `selector:
    matchLabels:
      app: httpbin`,
    ),
    authorizationPolicy(
      'istio-system',
      'allow-nothing',
      `selector:
    matchLabels:
      version: v1`,
    ),
  ]);
  t.is(http(policyOf(s, 'bar/httpbin'), {}), 'deny');
  t.is(http(policyOf(s, 'bar/other'), {}), 'allow');
  t.is(http(policyOf(s, 'baz/v1'), {}), 'deny');
  t.is(http(policyOf(s, 'baz/v2'), {}), 'allow');
});

test('reference: the dry-run annotation evaluates a DENY without enforcing it', (t) => {
  const s = compileYaml([
    podYaml('httpbin', { labels: { app: 'httpbin' } }),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry-run-example
  annotations:
    "istio.io/dry-run": "true"
spec:
  selector:
    matchLabels:
      app: httpbin
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/headers"]
`,
  ]);
  const p = policyOf(s, 'default/httpbin');
  const r = authorizeRequest(p, l4Of({}), httpOf({ path: '/headers' }));
  t.is(r.decision, 'allow');
  t.deepEqual(r.dryRunMatched, ['default/dry-run-example']);
});

test('reference: the first example (principal or namespace, GET /info* or POST /data, when a JWT issuer) denies requests without that JWT', (t) => {
  // nodemesh validates no JWT, so no request has the claim: Istio denies these requests too
  const p = fooHttpbin(`action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    - source:
        namespaces: ["test"]
    to:
    - operation:
        methods: ["GET"]
        paths: ["/info*"]
    - operation:
        methods: ["POST"]
        paths: ["/data"]
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.google.com"]`);
  t.is(http(p, { principal: sa('default', 'sleep'), method: 'GET', path: '/info/x' }), 'deny');
  t.is(http(p, { principal: sa('test', 'any'), method: 'POST', path: '/data' }), 'deny');
});

// --- upstream YAML in ../shared/conformance/security/ -----------------------------------

securitySampleTest('istio.io allow-nothing: every request and connection to the namespace is denied', (t) => {
  const s = compileYaml([
    podYaml('productpage', { ns: 'default' }),
    podYaml('elsewhere', { ns: 'other' }),
    securitySample('istio-io-authorizationpolicy-allow-nothing.yaml'),
  ]);
  const p = policyOf(s, 'default/productpage');
  for (const r of [{}, { principal: sa('default', 'bookinfo-productpage') }, { method: 'POST', path: '/x' }]) t.is(http(p, r), 'deny');
  t.is(tcp(p, {}), 'deny');
  t.is(http(policyOf(s, 'other/elsewhere'), {}), 'allow');
});

securitySampleTest('istio.io deny-method-get: GET is denied unless x-token is admin; other methods pass', (t) => {
  const s = compileYaml(
    [
      podYaml('httpbin', { ns: 'foo', labels: { app: 'httpbin' } }),
      securitySample('istio-io-authorizationpolicy-deny-method-get-when.yaml'),
    ].join('---\n'),
  );
  const p = policyOf(s, 'foo/httpbin');
  t.is(http(p, { method: 'GET', path: '/get' }), 'deny');
  t.is(http(p, { method: 'GET', path: '/get', headers: { 'x-token': 'guest' } }), 'deny');
  t.is(http(p, { method: 'GET', path: '/get', headers: { 'X-Token': 'admin' } }), 'allow');
  t.is(http(p, { method: 'POST', path: '/post' }), 'allow');
});

securitySampleTest('istio.io details-viewer: only bookinfo-productpage, only GET', (t) => {
  const s = compileYaml([
    podYaml('details', { labels: { app: 'details' } }),
    securitySample('istio-io-authorizationpolicy-details-viewer.yaml'),
  ]);
  const p = policyOf(s, 'default/details');
  t.is(http(p, { principal: sa('default', 'bookinfo-productpage'), method: 'GET', path: '/details/0' }), 'allow');
  t.is(http(p, { principal: sa('default', 'bookinfo-productpage'), method: 'POST', path: '/details/0' }), 'deny');
  t.is(http(p, { principal: sa('default', 'bookinfo-reviews'), method: 'GET', path: '/details/0' }), 'deny');
  t.is(http(p, { method: 'GET', path: '/details/0' }), 'deny', 'plaintext carries no principal');
  t.is(tcp(p, { principal: sa('default', 'bookinfo-productpage') }), 'deny', 'an ALLOW rule with methods never matches TCP');
});

securitySampleTest('Istio dataset httpbin policy (JWT issuer condition): denied without a JWT', (t) => {
  const s = compileYaml([
    podYaml('httpbin', { labels: { app: 'httpbin', version: 'v1' } }),
    securitySample('istio-dataset-authorizationpolicy-v1.yaml'),
  ]);
  t.is(http(policyOf(s, 'default/httpbin'), { principal: sa('default', 'sleep'), method: 'GET', path: '/info' }), 'deny');
});

securitySampleTest(
  'Istio ambient deny-groups: L4 rules deny at accept, HTTP-only rules deny any non-HTTP stream, and HTTP requests they cannot match pass',
  (t) => {
    const s = compileYaml([podYaml('server'), securitySample('istio-ambient-authorizationpolicy-deny-l4-l7-mix.yaml')]);
    const p = policyOf(s, 'default/server');
    t.true(p.http);
    // "L4 only when": namespace when-l4-ns AND source.ip 10.10.10.10 (not 20.20.20.20)
    t.is(http(p, { principal: sa('when-l4-ns', 'x'), ip: '10.10.10.10' }), 'deny');
    t.is(authorizeConnection(p, l4Of({ principal: sa('when-l4-ns', 'x'), ip: '10.10.10.10' })).decision, 'deny', 'decided at accept');
    t.is(http(p, { principal: sa('when-l4-ns', 'x'), ip: '10.10.10.11' }), 'allow');
    // "Only L7" (requestPrincipals, paths, methods): no JWT, so no HTTP request matches it...
    t.is(http(p, { principal: sa('default', 'x'), method: 'l7-method', path: '/l7-foo' }), 'allow');
    // ...but on a stream that is not HTTP its HTTP fields count as matching (fail safe)
    t.is(tcp(p, { principal: sa('default', 'x') }), 'deny');
  },
);

securitySampleTest(
  "Istio validation sample: serviceAccounts (a bare name is in the policy's namespace), principals and namespaces are alternatives",
  (t) => {
    const s = compileYaml([
      podYaml('server'),
      podYaml('httpbin', { labels: { app: 'httpbin' } }),
      securitySample('istio-validation-authorizationpolicy-valid.yaml'),
    ]);
    const p = policyOf(s, 'default/server');
    t.is(tcp(p, { principal: sa('baz', 'sa') }), 'allow');
    t.is(tcp(p, { principal: sa('default', 'sa') }), 'allow');
    t.is(tcp(p, { principal: sa('other', 'sa') }), 'deny');
    t.is(tcp(p, { principal: sa('bar', 'anyone') }), 'allow');
    t.is(tcp(p, { ip: '1.2.3.4' }), 'deny', 'plaintext');
    // `full` (app: httpbin) also requires request principals: nothing matches it
    t.is(http(policyOf(s, 'default/httpbin'), { principal: sa('ns', 'x') }), 'deny');
  },
);

// --- the combination rules, one by one ---------------------------------------------------

function onePolicy(spec: string): WorkloadPolicy {
  return policyOf(compileYaml([podYaml('server', { ns: 'shop' }), authorizationPolicy('shop', 'p', spec)]), 'shop/server');
}

test('rules are ORed; from, to and when in a rule are ANDed', (t) => {
  const p = onePolicy(`rules:
  - from: [{source: {namespaces: [a]}}]
    to: [{operation: {ports: ["80"]}}]
    when: [{key: source.ip, values: ["10.0.0.0/8"]}]
  - to: [{operation: {ports: ["9090"]}}]`);
  t.is(tcp(p, { principal: sa('a', 'x'), port: 80, ip: '10.1.1.1' }), 'allow');
  t.is(tcp(p, { principal: sa('a', 'x'), port: 80, ip: '192.168.1.1' }), 'deny', 'when fails');
  t.is(tcp(p, { principal: sa('b', 'x'), port: 80, ip: '10.1.1.1' }), 'deny', 'from fails');
  t.is(tcp(p, { principal: sa('a', 'x'), port: 81, ip: '10.1.1.1' }), 'deny', 'to fails');
  t.is(tcp(p, { ip: '192.168.1.1', port: 9090 }), 'allow', 'the second rule');
});

test('entries of a list are ORed; fields of one source are ANDed; not-forms exclude', (t) => {
  const p = onePolicy(`rules:
  - from:
    - source: {principals: ["cluster.local/ns/a/sa/x", "cluster.local/ns/a/sa/y"], notIpBlocks: ["10.9.0.0/16"]}
    - source: {ipBlocks: ["192.168.0.0/16"]}`);
  t.is(tcp(p, { principal: sa('a', 'y'), ip: '10.1.1.1' }), 'allow');
  t.is(tcp(p, { principal: sa('a', 'y'), ip: '10.9.1.1' }), 'deny', 'notIpBlocks');
  t.is(tcp(p, { principal: sa('a', 'z'), ip: '10.1.1.1' }), 'deny');
  t.is(tcp(p, { ip: '192.168.3.4' }), 'allow', 'the second source');
});

test('values match exactly, by prefix abc*, by suffix *abc, or by presence *', (t) => {
  const p = onePolicy(`rules:
  - to: [{operation: {paths: ["/exact", "/prefix/*", "*/suffix"]}}]
  - from: [{source: {principals: ["*"]}}]
    to: [{operation: {ports: ["9090"]}}]`);
  t.is(http(p, { path: '/exact' }), 'allow');
  t.is(http(p, { path: '/exact/more' }), 'deny');
  t.is(http(p, { path: '/prefix/a/b' }), 'allow');
  t.is(http(p, { path: '/a/b/suffix' }), 'allow');
  t.is(http(p, { path: '/a/b/suffixes' }), 'deny');
  t.is(tcp(p, { principal: sa('any', 'one'), port: 9090 }), 'allow', 'presence: any principal');
  t.is(tcp(p, { port: 9090 }), 'deny', 'presence needs a value: plaintext has no principal');
});

test('hosts match case-insensitively; methods and headers as written; path templates {*} and {**}', (t) => {
  const p = onePolicy(`rules:
  - to: [{operation: {hosts: ["*.Example.com"], methods: ["GET"], paths: ["/api/{*}/items/{**}"]}}]`);
  t.is(http(p, { host: 'shop.EXAMPLE.com', method: 'GET', path: '/api/v1/items/a/b' }), 'allow');
  t.is(http(p, { host: 'shop.example.com', method: 'get', path: '/api/v1/items/a' }), 'deny', 'methods are case-sensitive');
  t.is(http(p, { host: 'shop.example.com', method: 'GET', path: '/api/v1/v2/items/a' }), 'deny', '{*} is one segment');
  t.is(http(p, { host: 'example.org', method: 'GET', path: '/api/v1/items/a' }), 'deny');
});

test('principals compare against the SPIFFE ID without spiffe://; namespaces and service accounts come from it', (t) => {
  const p = onePolicy(`rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/client"]}}]
  - from: [{source: {serviceAccounts: ["front"]}}]
  - from: [{source: {namespaces: ["ops-*"]}}]`);
  t.is(tcp(p, { principal: 'spiffe://cluster.local/ns/shop/sa/client' }), 'allow');
  t.is(tcp(p, { principal: sa('shop', 'front') }), 'allow', "serviceAccounts: a bare name is in the policy's namespace");
  t.is(tcp(p, { principal: sa('other', 'front') }), 'deny');
  t.is(tcp(p, { principal: sa('ops-eu', 'x') }), 'allow');
  t.is(tcp(p, { principal: 'spiffe://other.domain/ns/shop/sa/client' }), 'deny', 'another trust domain');
});

test('a principal counts only over mTLS: the same SPIFFE ID on a plaintext connection matches no principal, namespace or service account', (t) => {
  const allow = onePolicy(`rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/client"]}}]
  - from: [{source: {namespaces: ["shop"]}}]
  - from: [{source: {serviceAccounts: ["client"]}}]`);
  const denyPlaintext = onePolicy(`action: DENY
  rules:
  - from: [{source: {notPrincipals: ["*"]}}]`);
  // the same claimed identity, once proven by mTLS and once only asserted
  const over = (mtls: boolean): L4Attributes => ({ ...l4Of({ principal: sa('shop', 'client') }), mtls });
  for (const [name, p] of [
    ['ALLOW by principal, namespace or service account', allow],
    ['DENY without a principal', denyPlaintext],
  ] as const) {
    t.is(authorizeConnection(p, over(true), { protocol: 'tcp' }).decision, 'allow', `${name}: mTLS`);
    t.is(authorizeConnection(p, over(false), { protocol: 'tcp' }).decision, 'deny', `${name}: plaintext, connection`);
    t.is(authorizeRequest(p, over(false), httpOf({})).decision, 'deny', `${name}: plaintext, request`);
    t.is(authorizeRequest(p, over(true), httpOf({})).decision, 'allow', `${name}: mTLS, request`);
  }
});

test('CUSTOM policies are skipped (nodemesh has no external authorizer)', (t) => {
  const p = onePolicy(`action: CUSTOM
  provider: {name: my-ext-authz}
  rules:
  - {}`);
  t.deepEqual(p.custom, ['shop/p']);
  t.is(tcp(p, {}), 'allow');
});

test('a policy with no rules never matches: a DENY one is refused at validation, an ALLOW one denies everything', (t) => {
  t.throws(() => onePolicy('action: DENY'), { message: /DENY policy without rules never triggers/ });
  t.is(tcp(onePolicy('action: ALLOW\n  rules: []'), { principal: sa('a', 'b') }), 'deny');
});

test('request.headers: presence * means the header is there, even empty; values match any of a repeated header', (t) => {
  const p = onePolicy(`rules:
  - when: [{key: "request.headers[x-debug]", values: ["*"]}]
  - when: [{key: "request.headers[x-role]", values: ["admin"]}]`);
  const req = (headers: Record<string, string | string[]>) =>
    authorizeRequest(p, l4Of({}), {
      ...httpOf({}),
      headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v : [v]])),
    }).decision;
  t.is(req({ 'x-debug': '' }), 'allow');
  t.is(req({}), 'deny');
  t.is(req({ 'x-role': ['user', 'admin'] }), 'allow');
  t.is(req({ 'x-role': 'user' }), 'deny');
});

test('notValues of an absent attribute hold: a DENY on notPrincipals ["*"] denies plaintext only', (t) => {
  const p = onePolicy(`action: DENY
  rules:
  - from: [{source: {notPrincipals: ["*"]}}]`);
  t.is(tcp(p, {}), 'deny');
  t.is(tcp(p, { principal: sa('a', 'b') }), 'allow');
});

test('path normalisation: dot segments, decoded unreserved characters, backslashes; %00 refused; query kept for forwarding', (t) => {
  t.deepEqual(normalizePath('/public/./data/abc/../xyz?x=1'), { path: '/public/data/xyz', target: '/public/data/xyz?x=1' });
  t.deepEqual(normalizePath('/some%2fdata/%61%62%63'), { path: '/some%2fdata/abc', target: '/some%2fdata/abc' });
  t.deepEqual(normalizePath('/some\\data'), { path: '/some/data', target: '/some/data' });
  t.is(normalizePath('/a%00b'), undefined);
  t.is(normalizePath('/../../etc')?.path, '/etc');
});

// --- properties ------------------------------------------------------------------------------

const values = <T extends ValueMatch>(...v: T[]) => fc.constantFrom(...v);
const exact = (value: string): ValueMatch => ({ kind: 'exact', value });
const prefix = (value: string): ValueMatch => ({ kind: 'prefix', value });
const cidr = (value: string): ValueMatch => ({ kind: 'cidr', value });

const match = (attribute: AttributeMatch['attribute'], v: fc.Arbitrary<ValueMatch>, p: string[] = []): fc.Arbitrary<AttributeMatch> =>
  fc
    .record({ values: fc.array(v, { maxLength: 2 }), notValues: fc.array(v, { maxLength: 1 }) })
    .filter((m) => m.values.length + m.notValues.length > 0)
    .map((m) => ({ attribute, path: p, ...m }));

const sourceMatch = fc.oneof(
  match(
    'source.principal',
    values(exact('cluster.local/ns/a/sa/x'), exact('cluster.local/ns/b/sa/y'), prefix('cluster.local/ns/a/'), {
      kind: 'presence',
      value: '',
    }),
  ),
  match('source.namespace', values(exact('a'), exact('b'), prefix('c'))),
  match('source.ip', values(cidr('10.0.0.0/8'), cidr('10.1.2.3/32'), cidr('192.168.0.0/16'))),
);
const operationMatch = fc.oneof(
  match('destination.port', values(exact('80'), exact('8080'))),
  match('request.method', values(exact('GET'), exact('POST'), prefix('P'))),
  match('request.path', values(prefix('/admin'), exact('/public'), { kind: 'template', value: '/api/{*}/x' })),
  match('request.host', values(exact('a.example.com'), { kind: 'suffix', value: '.example.com' })),
);
const whenMatch = fc.oneof(
  sourceMatch,
  operationMatch,
  match('request.headers', values(exact('admin'), { kind: 'presence', value: '' }), ['x-token']),
);
const clause = (m: fc.Arbitrary<AttributeMatch>) => fc.array(m, { minLength: 1, maxLength: 3 }).map((matches) => ({ matches }));
const ruleArb: fc.Arbitrary<AuthorizationRule> = fc.record({
  from: fc.array(clause(sourceMatch), { maxLength: 2 }),
  to: fc.array(clause(operationMatch), { maxLength: 2 }),
  when: fc.array(whenMatch, { maxLength: 2 }),
});
interface PolicyArb {
  action: AuthorizationAction;
  rules: AuthorizationRule[];
}
const policyArb = (action: AuthorizationAction): fc.Arbitrary<PolicyArb> =>
  fc.array(ruleArb, { maxLength: 3 }).map((rules) => ({ action, rules }));
const policiesArb = fc.array(fc.oneof(policyArb('ALLOW'), policyArb('DENY')), { maxLength: 4 });

const reqArb: fc.Arbitrary<Req> = fc.record<Req>({
  principal: fc.constantFrom<string | undefined>(undefined, sa('a', 'x'), sa('b', 'y'), sa('c', 'z')),
  ip: fc.constantFrom('10.1.2.3', '10.9.9.9', '192.168.1.1', '172.16.0.1'),
  port: fc.constantFrom(80, 8080, 9090),
  method: fc.constantFrom('GET', 'POST', 'PUT'),
  path: fc.constantFrom('/admin/x', '/public', '/api/v1/x', '/other'),
  host: fc.constantFrom('a.example.com', 'b.example.com', 'other'),
  headers: fc.constantFrom<Record<string, string>>({}, { 'x-token': 'admin' }, { 'x-token': 'user' }),
});

const SERVER: Workload = {
  uid: 'shop/server',
  name: 'server',
  namespace: 'shop',
  node: 'node-a',
  ip: '10.244.0.9',
  serviceAccount: 'server',
  labels: { app: 'server' },
  meshed: true,
  spiffeId: sa('shop', 'server'),
  failOpen: false,
  workloadName: '',
};
const OTHER: Workload = { ...SERVER, uid: 'shop/other', name: 'other', ip: '10.244.0.10', labels: { app: 'other' } };

/** Compiles policies (in shop, optionally with a selector) for the two workloads, as the control plane would. */
function compiled(policies: (PolicyArb & { selector?: Record<string, string> })[]): SecurityIndex {
  const resources: Resource[] = policies.map((p, i) => ({
    key: { group: 'security.istio.io', kind: 'AuthorizationPolicy', namespace: 'shop', name: `p${i}` },
    apiVersion: 'security.istio.io/v1',
    file: 'generated.yaml',
    line: 1,
    notes: [],
    body: {
      kind: 'AuthorizationPolicy',
      spec: { selector: p.selector, targetRefs: [], action: p.action, dryRun: false, provider: '', rules: p.rules },
    },
  }));
  return SecurityIndex.of(
    compileSecurity(resources, { workloads: [SERVER, OTHER], services: [], trustDomain: 'cluster.local', rootNamespace: 'istio-system' }),
  );
}

test('property: DENY always beats ALLOW — a DENY that denies a request alone denies it among any policies', (t) => {
  holds(
    t,
    fc.property(policiesArb, policyArb('DENY'), reqArb, (others, deny, r) => {
      const alone = compiled([deny]).forWorkload('shop/server');
      fc.pre(http(alone, r) === 'deny');
      const all = compiled([...others, deny, ...others]).forWorkload('shop/server');
      return http(all, r) === 'deny';
    }),
    { numRuns: 300 },
  );
});

test('property: AUDIT never changes the decision', (t) => {
  holds(
    t,
    fc.property(policiesArb, policyArb('AUDIT'), reqArb, (policies, audit, r) => {
      const without = compiled(policies).forWorkload('shop/server');
      const withAudit = compiled([...policies, audit]).forWorkload('shop/server');
      return http(without, r) === http(withAudit, r) && tcp(without, r) === tcp(withAudit, r);
    }),
    { numRuns: 300 },
  );
});

test("property: adding a policy for another workload never changes this one's decision", (t) => {
  holds(
    t,
    fc.property(policiesArb, fc.oneof(policyArb('ALLOW'), policyArb('DENY')), reqArb, (policies, extra, r) => {
      const before = compiled(policies).forWorkload('shop/server');
      const after = compiled([...policies, { ...extra, selector: { app: 'other' } }]);
      return http(before, r) === http(after.forWorkload('shop/server'), r) && tcp(before, r) === tcp(after.forWorkload('shop/server'), r);
    }),
    { numRuns: 300 },
  );
});

test('property: TCP evaluation of HTTP-only fields is fail-safe — a stream allowed as TCP would have every HTTP request allowed', (t) => {
  holds(
    t,
    fc.property(policiesArb, reqArb, reqArb, (policies, r, other) => {
      const p = compiled(policies).forWorkload('shop/server');
      fc.pre(tcp(p, r) === 'allow');
      // the same connection (L4), any request on it
      const request = { ...other, principal: r.principal, ip: r.ip, port: r.port };
      return authorizeRequest(p, l4Of(request), httpOf(request)).decision === 'allow';
    }),
    { numRuns: 500 },
  );
});

test('property: the decision at accept agrees with every request — denied at accept means every request would be denied, decided without L7 means every request gets that decision', (t) => {
  holds(
    t,
    fc.property(policiesArb, reqArb, reqArb, (policies, r, other) => {
      const p = compiled(policies).forWorkload('shop/server');
      const accept = authorizeConnection(p, l4Of(r));
      const request = { ...other, principal: r.principal, ip: r.ip, port: r.port };
      const perRequest = authorizeRequest(p, l4Of(request), httpOf(request)).decision;
      if (accept.decision === 'deny') return perRequest === 'deny';
      if (!accept.needsL7) return perRequest === 'allow';
      return true;
    }),
    { numRuns: 500 },
  );
});

// --- the index and the evaluation modes, on hand-built snapshots (issue 14: each part of the module shown) ---

/** One attribute test as the snapshot carries it (`path` is the header name of request.headers). */
function am(attribute: AttributeMatch['attribute'], values: string[], path: string[] = []): AttributeMatch {
  return { attribute, path, values: values.map(exact), notValues: [] };
}
/** A rule whose only source clause is `from` (connection attributes) and whose only operation clause is `to`. */
function rule(from: AttributeMatch[], to: AttributeMatch[] = []): AuthorizationRule {
  return { from: from.length ? [{ matches: from }] : [], to: to.length ? [{ matches: to }] : [], when: [] };
}
function ap(name: string, action: AuthorizationAction, rules: AuthorizationRule[], dryRun = false): AuthorizationPolicy {
  return { namespace: 'shop', name, action, dryRun, provider: action === 'CUSTOM' ? 'ext' : '', rules };
}
/** The workload shop/server under `policies` (all named by it), as the snapshot would carry it. */
function snapshot(policies: AuthorizationPolicy[], w: Partial<WorkloadSecurity> = {}): SecurityConfig {
  const http = policies.some((p) => !p.dryRun && (p.action === 'ALLOW' || p.action === 'DENY') && p.rules.some((r) => ruleUsesHttpLocal(r)));
  return {
    workloads: [
      {
        workload: 'shop/server',
        mtlsMode: 'PERMISSIVE',
        portMtls: [],
        peerAuthentications: [],
        authorizationPolicies: policies.map((p) => `${p.namespace}/${p.name}`).sort(),
        http,
        ...w,
      },
    ],
    authorizationPolicies: policies,
  };
}
function ruleUsesHttpLocal(r: AuthorizationRule): boolean {
  const h = (m: AttributeMatch) => m.attribute.startsWith('request.');
  return r.from.some((c) => c.matches.some(h)) || r.to.some((c) => c.matches.some(h)) || r.when.some(h);
}
const server = (policies: AuthorizationPolicy[], w: Partial<WorkloadSecurity> = {}) => SecurityIndex.of(snapshot(policies, w)).forWorkload('shop/server');
const L4: L4Attributes = { sourceIp: '10.244.1.5', destinationIp: '10.244.0.9', destinationPort: 80, mtls: false };
const mtlsFrom = (id: string): L4Attributes => ({ ...L4, sourcePrincipal: id, mtls: true });
const GET = (path: string): HttpAttributes => ({ method: 'GET', path, host: 'server.shop', headers: {} });

test('a workload the snapshot does not list has no policy: PERMISSIVE, every connection allowed, no HTTP parsing', (t) => {
  const none = {
    workload: 'shop/unlisted',
    mtlsMode: 'PERMISSIVE',
    portMtls: new Map(),
    peerAuthentications: [],
    http: false,
    deny: [],
    allow: [],
    audit: [],
    dryRun: [],
    custom: [],
  };
  t.deepEqual(SecurityIndex.of(snapshot([ap('deny-all', 'DENY', [rule([])])])).forWorkload('shop/unlisted'), none);
  t.deepEqual(SecurityIndex.empty().forWorkload('shop/unlisted'), none);
  t.deepEqual(authorizeConnection(SecurityIndex.empty().forWorkload('shop/unlisted'), L4), {
    decision: 'allow',
    reason: 'no-allow-policy',
    audited: [],
    dryRunMatched: [],
    needsL7: false,
  });
});

test('the index carries each workload\'s mTLS modes and PeerAuthentications, and sorts its policies by action (CUSTOM, dry-run, DENY, ALLOW, AUDIT)', (t) => {
  const policies = [
    ap('a-allow', 'ALLOW', [rule([])]),
    ap('b-audit', 'AUDIT', [rule([])]),
    ap('c-custom', 'CUSTOM', [rule([])]),
    ap('d-deny', 'DENY', [rule([am('source.ip', ['10.9.9.9'])])]),
    ap('e-dry', 'DENY', [rule([])], true),
  ];
  const p = server(policies, {
    mtlsMode: 'STRICT',
    portMtls: [{ port: 8080, mode: 'DISABLE' }],
    peerAuthentications: ['istio-system/default', 'shop/server'],
  });
  t.is(p.workload, 'shop/server');
  t.is(p.mtlsMode, 'STRICT');
  t.deepEqual(p.portMtls, new Map([[8080, 'DISABLE']]));
  t.deepEqual(p.peerAuthentications, ['istio-system/default', 'shop/server']);
  t.deepEqual(p.custom, ['shop/c-custom']);
  t.deepEqual(p.dryRun.map((x) => x.ref), ['shop/e-dry']);
  t.deepEqual(p.deny.map((x) => x.ref), ['shop/d-deny']);
  t.deepEqual(p.allow.map((x) => x.ref), ['shop/a-allow']);
  t.deepEqual(p.audit.map((x) => x.ref), ['shop/b-audit']);
});

test('a snapshot naming an AuthorizationPolicy it does not carry fails closed: the workload denies everything', (t) => {
  const config = snapshot([]);
  config.workloads[0]!.authorizationPolicies = ['shop/missing'];
  const p = SecurityIndex.of(config).forWorkload('shop/server');
  t.deepEqual(p.allow, [{ ref: 'shop/missing', action: 'ALLOW', dryRun: false, rules: [] }]);
  t.deepEqual([p.deny, p.audit, p.dryRun, p.custom], [[], [], [], []]);
  const r = authorizeConnection(p, mtlsFrom(sa('shop', 'client')));
  t.is(r.decision, 'deny');
  t.is(r.reason, 'no-allow-match');
  t.is(authorizeRequest(p, L4, GET('/')).decision, 'deny');
});

test('source.trustDomain comes from the principal; remote.ip is the source IP; destination.ip and destination.port are the pod\'s', (t) => {
  const td = server([ap('td', 'ALLOW', [rule([am('source.trustDomain', ['cluster.local'])])])]);
  t.is(authorizeConnection(td, mtlsFrom(sa('shop', 'client'))).decision, 'allow');
  t.is(authorizeConnection(td, mtlsFrom('spiffe://other.domain/ns/shop/sa/client')).decision, 'deny');
  t.is(authorizeConnection(td, L4).decision, 'deny', 'no principal on plaintext: no trust domain');
  // a DENY on any trust domain but ours: plaintext has none, which is not ours (as notPrincipals)
  const notOurs = server([ap('nt', 'DENY', [rule([{ attribute: 'source.trustDomain', path: [], values: [], notValues: [exact('cluster.local')] }])])]);
  t.is(authorizeConnection(notOurs, L4).decision, 'deny');
  t.is(authorizeConnection(notOurs, mtlsFrom('spiffe://evil.domain/ns/shop/sa/client')).decision, 'deny');
  t.is(authorizeConnection(notOurs, mtlsFrom(sa('shop', 'client'))).decision, 'allow');

  const remote = server([ap('remote', 'ALLOW', [rule([am('remote.ip', ['10.244.1.5'])])])]);
  t.is(authorizeConnection(remote, L4).decision, 'allow');
  t.is(authorizeConnection(remote, { ...L4, sourceIp: '10.244.1.6' }).decision, 'deny');

  const dip = server([ap('dip', 'ALLOW', [rule([], [am('destination.ip', ['10.244.0.9'])])])]);
  t.is(authorizeConnection(dip, L4).decision, 'allow');
  t.is(authorizeConnection(dip, { ...L4, destinationIp: '10.244.0.10' }).decision, 'deny');
  const dport = server([ap('dport', 'ALLOW', [rule([], [am('destination.port', ['80'])])])]);
  t.is(authorizeConnection(dport, L4).decision, 'allow');
  t.is(authorizeConnection(dport, { ...L4, destinationPort: 81 }).decision, 'deny');
});

test('the result says why: the DENY that matched, no ALLOW policy, the ALLOW that matched, or none matched', (t) => {
  const deny = ap('deny-ip', 'DENY', [rule([am('source.ip', ['10.244.1.5'])])]);
  const allow = ap('allow-port', 'ALLOW', [rule([], [am('destination.port', ['80'])])]);
  t.deepEqual(authorizeConnection(server([deny]), L4), {
    decision: 'deny',
    policy: 'shop/deny-ip',
    reason: 'deny-policy',
    audited: [],
    dryRunMatched: [],
    needsL7: false,
  });
  const other = { ...L4, sourceIp: '10.244.1.6' };
  t.deepEqual(authorizeConnection(server([deny]), other), { decision: 'allow', reason: 'no-allow-policy', audited: [], dryRunMatched: [], needsL7: false });
  t.deepEqual(authorizeConnection(server([allow]), L4), {
    decision: 'allow',
    policy: 'shop/allow-port',
    reason: 'allow-policy',
    audited: [],
    dryRunMatched: [],
    needsL7: false,
  });
  t.deepEqual(authorizeConnection(server([allow]), { ...L4, destinationPort: 81 }), {
    decision: 'deny',
    reason: 'no-allow-match',
    audited: [],
    dryRunMatched: [],
    needsL7: false,
  });
  t.deepEqual(authorizeRequest(server([deny]), L4, GET('/')), { decision: 'deny', policy: 'shop/deny-ip', reason: 'deny-policy', audited: [], dryRunMatched: [] });
});

test('at accept, HTTP-dependent rules are deferred: allowed pending requests needs L7 and reports AUDIT and dry-run per request only', (t) => {
  const p = server([
    ap('allow-public', 'ALLOW', [rule([], [am('request.path', ['/public'])])]),
    ap('audit-ip', 'AUDIT', [rule([am('source.ip', ['10.244.1.5'])])]),
    ap('dry-ip', 'DENY', [rule([am('source.ip', ['10.244.1.5'])])], true),
  ]);
  t.true(p.http);
  t.deepEqual(authorizeConnection(p, L4), { decision: 'allow', reason: 'allow-policy', audited: [], dryRunMatched: [], needsL7: true });
  t.deepEqual(authorizeRequest(p, L4, GET('/public')), {
    decision: 'allow',
    policy: 'shop/allow-public',
    reason: 'allow-policy',
    audited: ['shop/audit-ip'],
    dryRunMatched: ['shop/dry-ip'],
  });
  t.is(authorizeRequest(p, L4, GET('/private')).decision, 'deny');
  // a DENY that tests HTTP leaves the connection pending too, even with no ALLOW policy
  const d = server([ap('deny-post', 'DENY', [rule([], [am('request.method', ['POST'])])])]);
  t.deepEqual(authorizeConnection(d, L4), { decision: 'allow', reason: 'no-allow-policy', audited: [], dryRunMatched: [], needsL7: true });
  t.is(authorizeRequest(d, L4, { ...GET('/'), method: 'POST' }).decision, 'deny');
  // an ALLOW that matches at accept names no policy while a DENY may still match a request
  const da = server([
    ap('deny-post', 'DENY', [rule([], [am('request.method', ['POST'])])]),
    ap('allow-ip', 'ALLOW', [rule([am('source.ip', ['10.244.1.5'])])]),
  ]);
  t.deepEqual(authorizeConnection(da, L4), { decision: 'allow', reason: 'allow-policy', audited: [], dryRunMatched: [], needsL7: true });
  t.deepEqual(authorizeRequest(da, L4, GET('/')), { decision: 'allow', policy: 'shop/allow-ip', reason: 'allow-policy', audited: [], dryRunMatched: [] });
});

test('decided at accept after all (a DENY on the connection): AUDIT and dry-run are reported then, HTTP fields counting as matches as for TCP', (t) => {
  const p = server([
    ap('allow-public', 'ALLOW', [rule([], [am('request.path', ['/public'])])]),
    ap('deny-ip', 'DENY', [rule([am('source.ip', ['10.244.1.5'])])]),
    ap('audit-path', 'AUDIT', [rule([], [am('request.path', ['/x'])])]),
    ap('dry-method', 'DENY', [rule([], [am('request.method', ['DELETE'])])], true),
    ap('dry-allow-get', 'ALLOW', [rule([], [am('request.method', ['GET'])])], true),
  ]);
  t.true(p.http);
  t.deepEqual(authorizeConnection(p, L4), {
    decision: 'deny',
    policy: 'shop/deny-ip',
    reason: 'deny-policy',
    audited: ['shop/audit-path'],
    dryRunMatched: ['shop/dry-method'],
    needsL7: false,
  });
  // allowed at accept by a rule without HTTP fields: likewise reported now
  const q = server([
    ap('allow-public', 'ALLOW', [rule([], [am('request.path', ['/public'])]), rule([am('source.ip', ['10.244.1.5'])])]),
    ap('audit-path', 'AUDIT', [rule([], [am('request.path', ['/x'])])]),
  ]);
  t.deepEqual(authorizeConnection(q, L4), {
    decision: 'allow',
    policy: 'shop/allow-public',
    reason: 'allow-policy',
    audited: ['shop/audit-path'],
    dryRunMatched: [],
    needsL7: false,
  });
});

test("protocol 'tcp' evaluates a stream that is not HTTP: ALLOW rules with HTTP fields dropped, a DENY's missing attributes match, never L7", (t) => {
  const p = server([
    ap('allow-public', 'ALLOW', [rule([], [am('request.path', ['/public'])])]),
    ap('deny-post', 'DENY', [rule([am('source.ip', ['10.244.1.5'])], [am('request.method', ['POST'])])]),
    ap('audit-path', 'AUDIT', [rule([], [am('request.path', ['/x'])])]),
  ]);
  t.deepEqual(authorizeConnection(p, L4, { protocol: 'tcp' }), {
    decision: 'deny',
    policy: 'shop/deny-post',
    reason: 'deny-policy',
    audited: ['shop/audit-path'],
    dryRunMatched: [],
    needsL7: false,
  });
  t.deepEqual(authorizeConnection(p, { ...L4, sourceIp: '10.244.1.6' }, { protocol: 'tcp' }), {
    decision: 'deny',
    reason: 'no-allow-match',
    audited: ['shop/audit-path'],
    dryRunMatched: [],
    needsL7: false,
  });
});

test('requests are matched on the normalised path; a path that cannot be normalised (%00) is matched as received', (t) => {
  const p = server([ap('deny-admin', 'DENY', [rule([], [{ attribute: 'request.path', path: [], values: [{ kind: 'prefix', value: '/admin' }], notValues: [] }])])]);
  t.is(authorizeRequest(p, L4, GET('/public/../admin/users')).decision, 'deny');
  t.is(authorizeRequest(p, L4, GET('/%61dmin')).decision, 'deny');
  t.is(authorizeRequest(p, L4, GET('/public/users')).decision, 'allow');
  t.is(normalizePath('/admin%00x'), undefined);
  t.is(authorizeRequest(p, L4, GET('/admin%00x')).decision, 'deny');
  t.is(authorizeRequest(p, L4, GET('/public%00x')).decision, 'allow');
});
