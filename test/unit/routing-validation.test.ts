// VirtualService, DestinationRule and HTTPRoute validation as a specification: what Istio and
// the Gateway API CRDs reject is rejected here with the file, line, resource and field, and
// what they accept is accepted, with Istio's and Gateway API's defaults filled in.
import test from 'ava';
import { parseYamlFile } from '../../control/source/files.js';
import { validateDocument, type ValidationResult } from '../../control/validate/validate.js';
import type { DestinationRuleSpec, GatewayRouteSpec, VirtualServiceSpec } from '../../control/model/routing.js';

function validate(yaml: string): ValidationResult {
  const parsed = parseYamlFile('/config/route.yaml', yaml);
  if ('error' in parsed) throw parsed.error;
  return validateDocument(parsed.documents[0]!);
}

const vs = (spec: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
${spec}`;

const dr = (spec: string, annotations = '') => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
${annotations}spec:
  host: reviews
${spec}`;

const route = (rules: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: shop
spec:
  parentRefs:
  - {group: "", kind: Service, name: web, port: 80}
  rules:
${rules}`;

const ONE_DEST = `  http:
  - route:
    - destination: {host: reviews}
`;

// [what, yaml, field, message]
const rejected: [string, string, string, RegExp][] = [
  ['weights that sum to 0 over two destinations', vs(`  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 0\n    - destination: {host: reviews, subset: v2}\n`), 'spec.http[0].route', /total destination weight = 0/],
  ['a negative weight', vs(`  http:\n  - route:\n    - destination: {host: reviews}\n      weight: -1\n    - destination: {host: ratings}\n      weight: 101\n`), 'spec.http[0].route[0].weight', /expected an integer 0-2147483647, found -1/],
  ['an unknown retryOn policy', vs(`${ONE_DEST}    retries: {attempts: 3, retryOn: "5xx,bogus"}\n`), 'spec.http[0].retries.retryOn', /"bogus" is not a valid retryOn policy/],
  ['a space in retryOn', vs(`${ONE_DEST}    retries: {attempts: 3, retryOn: "5xx, reset"}\n`), 'spec.http[0].retries.retryOn', /" reset" is not a valid retryOn policy \(remove the spaces around it\)/],
  ['a retry policy with attempts 0', vs(`${ONE_DEST}    retries: {attempts: 0, perTryTimeout: 1s}\n`), 'spec.http[0].retries', /http retry policy configured when attempts are set to 0 \(disabled\)/],
  ['a duration without a unit', vs(`${ONE_DEST}    timeout: "5"\n`), 'spec.http[0].timeout', /"5" is not a duration: expected a number with a unit/],
  ['a duration below 1ms', vs(`${ONE_DEST}    timeout: 500us\n`), 'spec.http[0].timeout', /at least 1ms/],
  ['a sub-millisecond duration', vs(`${ONE_DEST}    timeout: 1.5ms\n`), 'spec.http[0].timeout', /only durations to ms precision are supported/],
  ['a lookahead', vs(`  http:\n  - match:\n    - uri: {regex: "/a(?=b)"}\n    route:\n    - destination: {host: reviews}\n`), 'spec.http[0].match[0].uri.regex', /lookahead \(\?= at offset 2 is not supported \(RE2 has no lookaround\)/],
  ['a backreference', vs(`  http:\n  - match:\n    - headers:\n        cookie: {regex: "(a)\\\\1"}\n    route:\n    - destination: {host: reviews}\n`), 'spec.http[0].match[0].headers.cookie.regex', /backreferences and octal escapes are not supported/],
  ['an unbalanced regex', vs(`  http:\n  - match:\n    - uri: {regex: "/(a"}\n    route:\n    - destination: {host: reviews}\n`), 'spec.http[0].match[0].uri.regex', /is not a valid regular expression/],
  ['an empty header prefix', vs(`  http:\n  - match:\n    - headers:\n        x-user: {prefix: ""}\n    route:\n    - destination: {host: reviews}\n`), 'spec.http[0].match[0].headers["x-user"].prefix', /prefix string match should not be empty/],
  ['delegation', vs(`  http:\n  - delegate: {name: child}\n`), 'spec.http[0].delegate', /delegation is not supported by nodemesh/],
  ['a redirect next to a route', vs(`${ONE_DEST}    redirect: {uri: /x}\n`), 'spec.http[0]', /HTTP route cannot contain both route and redirect/],
  ['neither route, redirect nor directResponse', vs(`  http:\n  - timeout: 1s\n`), 'spec.http[0].route', /HTTP route, redirect or direct_response is required/],
  ['mirror and mirrors together', vs(`${ONE_DEST}    mirror: {host: reviews}\n    mirrors:\n    - destination: {host: ratings}\n`), 'spec.http[0]', /cannot contain both mirror and mirrors/],
  ['a typo in a field name', vs(`${ONE_DEST}    retry: {attempts: 3}\n`), 'spec.http[0].retry', /unknown field; did you mean retries\?/],
  ['setting the Host header in a response', vs(`${ONE_DEST}    headers:\n      response:\n        set: {host: x}\n`), 'spec.http[0].headers.response.set.host', /cannot set Host header/],
  ['a fault with neither abort nor delay', vs(`${ONE_DEST}    fault: {}\n`), 'spec.http[0].fault', /must have an abort and\/or a delay/],
  ['an abort status out of range', vs(`${ONE_DEST}    fault:\n      abort: {httpStatus: 700, percentage: {value: 10}}\n`), 'spec.http[0].fault.abort.httpStatus', /HTTP status 700 \(a number\) is not in range 200-599/],
  ['a wildcard host * for the mesh', vs(`  http: []\n  tcp:\n  - route:\n    - destination: {host: reviews}\n`).replace('hosts: [reviews]', 'hosts: ["*"]'), 'spec.hosts[0]', /wildcard host \* is not allowed for virtual services bound to the mesh gateway/],
  ['no http, tcp or tls', vs(''), 'spec', /http, tcp or tls must be provided in virtual service/],
  ['an empty trafficPolicy', dr('  trafficPolicy: {}\n'), 'spec.trafficPolicy', /traffic policy must have at least one field/],
  ['local-origin failures without split', dr('  trafficPolicy:\n    outlierDetection: {consecutiveLocalOriginFailures: 3}\n'), 'spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures', /split external local origin errors is set to false/],
  ['two consistent-hash keys', dr('  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpHeaderName: x-user, useSourceIp: true}\n'), 'spec.trafficPolicy.loadBalancer.consistentHash', /set only one hash key, found httpHeaderName and useSourceIp/],
  ['a cookie hash without a name', dr('  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpCookie: {ttl: 0s}\n'), 'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name', /name required for HttpCookie/],
  ['a duplicate subset', dr('  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v1, labels: {version: v2}}\n'), 'spec.subsets[1].name', /duplicate subset names: v1/],
  ['an unknown simple balancer', dr('  trafficPolicy:\n    loadBalancer: {simple: PEAK_EWMA}\n'), 'spec.trafficPolicy.loadBalancer.simple', /nodemesh's PEAK_EWMA is chosen with the annotation nodemesh.io\/load-balancer/],
  ['a bad load-balancer annotation', dr('  subsets: []\n', '  annotations: {nodemesh.io/load-balancer: fastest}\n'), 'metadata.annotations["nodemesh.io/load-balancer"]', /expected PEAK_EWMA, found "fastest"/],
  ['a maxEjectionPercent above 100', dr('  trafficPolicy:\n    outlierDetection: {maxEjectionPercent: 150}\n'), 'spec.trafficPolicy.outlierDetection.maxEjectionPercent', /expected an integer 0-100, found 150 \(a number\)/],
  ['more than 16 rules', route(Array.from({ length: 17 }, () => '  - backendRefs: [{name: web-v1, port: 80}]\n').join('')), 'spec.rules', /at most 16 rules, found 17/],
  ['a relative path', route('  - matches:\n    - path: {type: PathPrefix, value: api}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].matches[0].path.value', /value must be an absolute path and start with '\/'/],
  ['a path with //', route('  - matches:\n    - path: {type: Exact, value: /a//b}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].matches[0].path.value', /must not contain '\/\/'/],
  ['a redirect with backendRefs', route('  - filters:\n    - type: RequestRedirect\n      requestRedirect: {scheme: https}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].filters', /RequestRedirect filter must not be used together with backendRefs/],
  ['a repeated RequestHeaderModifier', route('  - filters:\n    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}\n    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: c, value: d}]}}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].filters[1]', /RequestHeaderModifier filter cannot be repeated/],
  ['ReplacePrefixMatch with an Exact match', route('  - matches:\n    - path: {type: Exact, value: /a}\n    filters:\n    - type: URLRewrite\n      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].matches', /When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified/],
  ['backendRequest longer than request', route('  - timeouts: {request: 1s, backendRequest: 2s}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].timeouts.backendRequest', /backendRequest timeout cannot be longer than request timeout/],
  ['a fractional Gateway API duration', route('  - timeouts: {request: 1.5s}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].timeouts.request', /"1.5s" is not a Gateway API duration/],
  ['a retry code outside 400-599', route('  - retry: {codes: [600]}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].retry.codes[0]', /expected an integer 400-599, found 600/],
  ['a Service backend without a port', route('  - backendRefs: [{name: web-v1}]\n'), 'spec.rules[0].backendRefs[0].port', /Must have port for Service reference/],
  ['a weight above 1000000', route('  - backendRefs: [{name: web-v1, port: 80, weight: 1000001}]\n'), 'spec.rules[0].backendRefs[0].weight', /expected an integer 0-1000000/],
  ['two actions on one header', route('  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {set: [{name: X-A, value: "1"}], remove: [x-a]}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].filters[0].requestHeaderModifier.remove[0]', /only one action for a given header name is permitted/],
  ['an ExtensionRef filter', route('  - filters:\n    - {type: ExtensionRef, extensionRef: {group: x.io, kind: F, name: f}}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].filters[0].type', /ExtensionRef filters are not supported by nodemesh/],
  ['a filter body that does not match its type', route('  - filters:\n    - {type: RequestHeaderModifier, responseHeaderModifier: {set: [{name: a, value: b}]}}\n    backendRefs: [{name: web-v1, port: 80}]\n'), 'spec.rules[0].filters[0].responseHeaderModifier', /filter.responseHeaderModifier must be nil if the filter.type is not ResponseHeaderModifier/],
];

for (const [what, yaml, field, message] of rejected) {
  test(`rejects ${what}, naming the field ${field}`, (t) => {
    const result = validate(yaml);
    if (result.ok) return t.fail('accepted');
    t.is(result.error.code, 'NM_ERR_CONFIG_FIELD');
    t.is(result.error.location.field, field);
    t.is(result.error.location.file, '/config/route.yaml');
    t.regex(result.error.message, message);
  });
}

test('an error message reads file:line: resource: field: what is wrong', (t) => {
  const result = validate(vs(`${ONE_DEST}    retries: {attempts: 3, retryOn: "5xx,bogus"}\n`));
  if (result.ok) return t.fail('accepted');
  t.is(
    result.error.message,
    '/config/route.yaml:11: VirtualService shop/reviews: field spec.http[0].retries.retryOn: "bogus" is not a valid retryOn policy; expected HTTP status codes or 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable',
  );
});

function vsSpec(yaml: string): VirtualServiceSpec {
  const r = validate(yaml);
  if (!r.ok) throw r.error;
  if (r.resource.body.kind !== 'VirtualService') throw new Error('not a VirtualService');
  return r.resource.body.spec;
}

test('retries: unset is Istio\'s default of 2; bare integers in retryOn become retriable status codes', (t) => {
  t.is(vsSpec(vs(ONE_DEST)).http[0]!.retries.attempts, 2);
  const r = vsSpec(vs(`${ONE_DEST}    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,503,connect-failure"}\n`)).http[0]!.retries;
  t.is(r.attempts, 3);
  t.is(r.perTryTimeoutMs, 2000);
  t.deepEqual(r.retryOn, ['gateway-error', 'connect-failure', 'retriable-status-codes']);
  t.deepEqual(r.retriableStatusCodes, [503]);
});

test('durations in Istio\'s format become milliseconds', (t) => {
  for (const [text, ms] of [['0.5s', 500], ['100ms', 100], ['2m', 120_000], ['1h30m', 5_400_000], ['1.5s', 1500]] as const)
    t.is(vsSpec(vs(`${ONE_DEST}    timeout: ${text}\n`)).http[0]!.timeoutMs, ms, text);
});

test('a fault turns timeouts and retries off and an unset percentage affects no request', (t) => {
  const h = vsSpec(vs(`${ONE_DEST}    timeout: 1s\n    fault:\n      delay: {fixedDelay: 7s}\n      abort: {httpStatus: 555, percentage: {value: 100}}\n`)).http[0]!;
  t.deepEqual(h.fault, { delay: { fixedDelayMs: 7000, percentage: 0 }, abort: { httpStatus: 555, grpcStatus: '', percentage: 100 } });
  t.is(h.timeoutMs, 0);
  t.is(h.retries.attempts, 0);
});

test('RE2 spellings JavaScript lacks are translated: a leading (?i), (?P<name>), \\A and \\z', (t) => {
  const m = vsSpec(vs(`  http:\n  - match:\n    - uri: {regex: "(?i)\\\\A/(?P<v>v[0-9]+)/.*\\\\z"}\n    route:\n    - destination: {host: reviews}\n`)).http[0]!.match[0]!;
  t.deepEqual(m.uri, { kind: 'regex', value: '^/(?<v>v[0-9]+)/.*$', ignoreCase: true });
});

test('header names are lowercased and {} means present', (t) => {
  const m = vsSpec(vs(`  http:\n  - match:\n    - headers:\n        End-User: {exact: jason}\n        x-canary: {}\n    route:\n    - destination: {host: reviews}\n`)).http[0]!.match[0]!;
  t.deepEqual(m.headers, [
    { name: 'end-user', match: { kind: 'exact', value: 'jason', ignoreCase: false } },
    { name: 'x-canary', match: { kind: 'present', value: '', ignoreCase: false } },
  ]);
});

test('a VirtualService bound to gateways only is accepted, says so, and carries nothing for the mesh', (t) => {
  const r = validate(vs(`  gateways: [istio-system/ingress]\n${ONE_DEST}`));
  if (!r.ok) return t.fail(r.error.message);
  t.regex(r.resource.notes.join('; '), /applies to gateways istio-system\/ingress only \(not mesh\)/);
  t.deepEqual((r.resource.body as { spec: VirtualServiceSpec }).spec.http, []);
});

test('DestinationRule: the annotation selects PEAK_EWMA; written groups are complete with Istio\'s defaults', (t) => {
  const r = validate(dr('  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n    outlierDetection: {consecutive5xxErrors: 1, baseEjectionTime: 3m}\n', '  annotations: {nodemesh.io/load-balancer: peak-ewma}\n'));
  if (!r.ok) return t.fail(r.error.message);
  const spec = (r.resource.body as { spec: DestinationRuleSpec }).spec;
  t.deepEqual(spec.policy.loadBalancer, { simple: 'PEAK_EWMA' });
  t.is(spec.policy.connectionPool!.maxConnections, 1);
  t.is(spec.policy.connectionPool!.http1MaxPendingRequests, 4294967295);
  t.is(spec.policy.connectionPool!.connectTimeoutMs, 10_000);
  t.like(spec.policy.outlierDetection, { enabled: true, consecutive5xxErrors: 1, baseEjectionTimeMs: 180_000, maxEjectionTimeMs: 300_000, intervalMs: 10_000, maxEjectionPercent: 10 });
  t.is(spec.policy.retryBudget, undefined);
});

test('DestinationRule retryBudget: Istio\'s percent and minRetryConcurrency (default 3), nodemesh\'s window', (t) => {
  const r = validate(dr('  trafficPolicy:\n    retryBudget: {percent: {value: 25}}\n'));
  if (!r.ok) return t.fail(r.error.message);
  t.deepEqual((r.resource.body as { spec: DestinationRuleSpec }).spec.policy.retryBudget, { percent: 25, minRetriesPerSecond: 10, ttlMs: 10_000, minRetryConcurrency: 3 });
});

test('HTTPRoute defaults: no matches is PathPrefix /, weight 1, Istio\'s retries; a trailing slash of a prefix is ignored', (t) => {
  const r = validate(route('  - backendRefs: [{name: web-v1, port: 80}]\n  - matches:\n    - path: {value: /api/}\n    backendRefs: [{name: web-v2, port: 80}]\n'));
  if (!r.ok) return t.fail(r.error.message);
  const spec = (r.resource.body as { spec: GatewayRouteSpec }).spec;
  t.deepEqual(spec.rules[0]!.matches[0]!.uri, { kind: 'pathPrefix', value: '/', ignoreCase: false });
  t.is(spec.rules[0]!.backendRefs[0]!.weight, 1);
  t.is(spec.rules[0]!.retries.attempts, 2);
  t.deepEqual(spec.rules[1]!.matches[0]!.uri, { kind: 'pathPrefix', value: '/api', ignoreCase: false });
});

test('HTTPRoute retry and timeouts (GEP-1731, GEP-1742): codes, attempts, backoff, request and backendRequest', (t) => {
  const r = validate(route('  - retry: {codes: [500, 503], attempts: 5, backoff: 100ms}\n    timeouts: {request: 400ms, backendRequest: 200ms}\n    backendRefs: [{name: web-v1, port: 80}]\n'));
  if (!r.ok) return t.fail(r.error.message);
  const rule = (r.resource.body as { spec: GatewayRouteSpec }).spec.rules[0]!;
  t.is(rule.timeoutMs, 400);
  t.like(rule.retries, { attempts: 5, perTryTimeoutMs: 200, retriableStatusCodes: [500, 503], backoffBaseMs: 100, backoffMaxMs: 1000 });
  t.true(rule.retries.retryOn.includes('retriable-status-codes'));
});

test('HTTPRoute redirect defaults to 302 and the scheme\'s well-known port', (t) => {
  const r = validate(route('  - filters:\n    - type: RequestRedirect\n      requestRedirect: {scheme: https, hostname: example.com}\n'));
  if (!r.ok) return t.fail(r.error.message);
  t.deepEqual((r.resource.body as { spec: GatewayRouteSpec }).spec.rules[0]!.redirect, { uri: '', replacePrefixMatch: '', authority: 'example.com', scheme: 'https', port: 443, status: 302 });
});
