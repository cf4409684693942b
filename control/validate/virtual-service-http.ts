// One VirtualService `http[]` rule → the snapshot's HttpRoute (destination hosts as written),
// validated as Istio validates it (pkg/config/validation: validateHTTPRoute and friends), with
// Istio's defaults filled in. Quoted sentences are from the VirtualService API reference or
// Istio's validation messages.
import {
  defaultRetryPolicy,
  type Destination,
  type Fault,
  type HeaderOps,
  type HttpMatch,
  type HttpRoute,
  type Mirror,
  type NamedMatch,
  type Redirect,
  type RetryPolicy,
  type Rewrite,
  type StringMatch,
} from '../api/snapshot-routing.js';
import { emptyHeaderOps } from '../model/routing.js';
import { formatFieldPath as fmt, type FieldPath } from '../model/source-document.js';
import { istioDuration } from './durations.js';
import {
  FieldProblem,
  describeValue,
  integer,
  isObj,
  knownFields,
  object,
  optArray,
  optBoolean,
  optInteger,
  optObject,
  optString,
  percent,
  requiredOneOf,
  string,
  stringMap,
  type Obj,
} from './fields.js';
import { headerName, headerValue } from './headers.js';
import { dns1123Label, wildcardDomain } from './names.js';
import { checkRegex } from './regex.js';

/** Envoy's x-envoy-retry-on / x-envoy-retry-grpc-on policies Istio accepts (supportedRetryOnPolicies). */
const RETRY_ON = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'envoy-ratelimited',
  'http3-post-connect-failure',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

/** Status codes Go's http.StatusText knows: what Istio accepts as a bare integer in retryOn. */
const KNOWN_STATUS = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408,
  409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

const GRPC_STATUS = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/**
 * `appliesToMesh`: the VirtualService's own gateways include mesh (a match's `gateways`
 * overrides it: "Gateway names in the top-level gateways field of the VirtualService (if any)
 * are overridden").
 */
export function virtualServiceHttpRoute(v: unknown, path: FieldPath, routeName: string, appliesToMesh: boolean, notes: string[]): HttpRoute | undefined {
  const o = object(v, path);
  knownFields(o, path, [
    'name',
    'match',
    'route',
    'redirect',
    'directResponse',
    'delegate',
    'rewrite',
    'timeout',
    'retries',
    'fault',
    'mirror',
    'mirrors',
    'mirrorPercent',
    'mirrorPercentage',
    'corsPolicy',
    'headers',
  ]);
  const name = optString(o.name, [...path, 'name']) || routeName;
  if (o.delegate !== undefined)
    throw new FieldProblem([...path, 'delegate'], 'delegation is not supported by nodemesh (Istio applies delegate VirtualServices at gateways only); write the delegate\'s rules here');
  const has = (k: string) => o[k] !== undefined && o[k] !== null;
  const route = optArray(o.route, [...path, 'route']);
  if (has('redirect')) {
    if (route.length > 0) throw new FieldProblem(path, 'HTTP route cannot contain both route and redirect');
    if (has('fault')) throw new FieldProblem(path, 'HTTP route cannot contain both fault and redirect');
    if (has('rewrite')) throw new FieldProblem(path, 'HTTP route rule cannot contain both rewrite and redirect');
    if (has('directResponse')) throw new FieldProblem(path, 'HTTP route rule cannot contain both direct_response and redirect');
  } else if (has('directResponse')) {
    if (route.length > 0) throw new FieldProblem(path, 'HTTP route cannot contain both route and direct_response');
    if (has('fault')) throw new FieldProblem(path, 'HTTP route cannot contain both fault and direct_response');
    if (has('rewrite')) throw new FieldProblem(path, 'HTTP route rule cannot contain both rewrite and direct_response');
  } else if (route.length === 0) throw new FieldProblem([...path, 'route'], 'HTTP route, redirect or direct_response is required');
  if (has('mirror') && optArray(o.mirrors, [...path, 'mirrors']).length > 0) throw new FieldProblem(path, 'HTTP route cannot contain both mirror and mirrors');

  const matchList = optArray(o.match, [...path, 'match']);
  const match: HttpMatch[] = [];
  matchList.forEach((m, i) => {
    const block = httpMatch(m, [...path, 'match', i], appliesToMesh, notes);
    if (block) match.push(block);
  });
  const meshMatches = matchList.length === 0 ? appliesToMesh : match.length > 0;

  const headers = routeHeaders(o.headers, [...path, 'headers']);
  const rewrite = has('rewrite') ? istioRewrite(o.rewrite, [...path, 'rewrite']) : undefined;
  // an authority set through headers is Istio's authority rewrite
  const auth = authorityFromHeaders(headers.request, rewrite, [...path, 'headers', 'request']);
  const out: HttpRoute = {
    name,
    match,
    destinations: route.map((d, i) => routeDestination(d, [...path, 'route', i], route.length)),
    // "Timeout for HTTP requests, default is disabled."
    timeoutMs: has('timeout') ? istioDuration(o.timeout, [...path, 'timeout']) : 0,
    retries: istioRetries(o.retries, [...path, 'retries']),
    headers,
    mirrors: istioMirrors(o, path),
  };
  if (route.length > 1 && out.destinations.every((d) => d.weight === 0)) throw new FieldProblem([...path, 'route'], 'total destination weight = 0: give at least one destination a weight > 0');
  if (rewrite || auth) out.rewrite = { ...(rewrite ?? { uri: '', replacePrefixMatch: '', replaceFullPath: '', authority: '' }), ...(auth ? { authority: auth } : {}) };
  if (has('redirect')) out.redirect = istioRedirect(o.redirect, [...path, 'redirect']);
  if (has('directResponse')) out.directResponse = directResponse(o.directResponse, [...path, 'directResponse']);
  if (has('fault')) {
    out.fault = fault(o.fault, [...path, 'fault'], notes);
    // "Note that timeouts or retries will not be enabled when faults are enabled on the client side."
    out.timeoutMs = 0;
    out.retries = { ...out.retries, attempts: 0 };
  }
  if (has('corsPolicy')) notes.push(`${fmt([...path, 'corsPolicy'])} is not applied by nodemesh yet`);
  if (!meshMatches) {
    notes.push(`${fmt(path)} (${name}) applies to gateways only: no match block includes mesh`);
    return undefined;
  }
  return out;
}

function httpMatch(v: unknown, path: FieldPath, vsMesh: boolean, notes: string[]): HttpMatch | undefined {
  const o = object(v, path);
  knownFields(o, path, ['name', 'uri', 'scheme', 'method', 'authority', 'headers', 'port', 'sourceLabels', 'gateways', 'queryParams', 'ignoreUriCase', 'withoutHeaders', 'sourceNamespace', 'statPrefix']);
  const ignoreUriCase = optBoolean(o.ignoreUriCase, [...path, 'ignoreUriCase']) ?? false;
  const m: HttpMatch = { headers: [], withoutHeaders: [], queryParams: [], port: 0, sourceLabels: {}, sourceNamespace: '' };
  if (o.uri !== undefined && o.uri !== null) {
    const uri = stringMatch(o.uri, [...path, 'uri'], { emptyPrefix: true });
    // "The case will be ignored only in the case of exact and prefix URI matches."
    m.uri = { ...uri, ignoreCase: uri.ignoreCase || (ignoreUriCase && uri.kind !== 'regex') };
  }
  for (const k of ['scheme', 'method', 'authority'] as const) if (o[k] !== undefined && o[k] !== null) m[k] = stringMatch(o[k], [...path, k], {});
  m.headers = namedMatches(o.headers, [...path, 'headers'], true);
  m.withoutHeaders = namedMatches(o.withoutHeaders, [...path, 'withoutHeaders'], true);
  m.queryParams = namedMatches(o.queryParams, [...path, 'queryParams'], false);
  m.port = optInteger(o.port, [...path, 'port'], 1, 65535) ?? 0;
  m.sourceLabels = stringMap(o.sourceLabels, [...path, 'sourceLabels']);
  const ns = optString(o.sourceNamespace, [...path, 'sourceNamespace']);
  if (ns) m.sourceNamespace = dns1123Label(ns, [...path, 'sourceNamespace']);
  const gateways = optArray(o.gateways, [...path, 'gateways']).map((g, i) => string(g, [...path, 'gateways', i]));
  if (o.statPrefix !== undefined) optString(o.statPrefix, [...path, 'statPrefix']);
  const mesh = gateways.length > 0 ? gateways.includes('mesh') : vsMesh;
  if (!mesh) {
    notes.push(`${fmt(path)} is not applied: its gateways (${gateways.join(', ') || 'the VirtualService\'s'}) do not include mesh`);
    return undefined;
  }
  return m;
}

function stringMatch(v: unknown, path: FieldPath, opts: { emptyPrefix?: boolean; allowPresent?: boolean }): StringMatch {
  const o = object(v, path);
  knownFields(o, path, ['exact', 'prefix', 'regex']);
  const set = (['exact', 'prefix', 'regex'] as const).filter((k) => o[k] !== undefined && o[k] !== null);
  if (set.length === 0) {
    // `{}`: the header (or query parameter) must be present, whatever its value
    if (opts.allowPresent) return { kind: 'present', value: '', ignoreCase: false };
    throw new FieldProblem(path, 'expected one of exact, prefix or regex');
  }
  if (set.length > 1) throw new FieldProblem(path, `set only one of exact, prefix or regex, found ${set.join(' and ')}`);
  const kind = set[0]!;
  const value = string(o[kind], [...path, kind]);
  if (kind === 'prefix' && value === '' && !opts.emptyPrefix) throw new FieldProblem([...path, 'prefix'], 'prefix string match should not be empty');
  if (kind === 'regex') {
    const re = checkRegex(value, [...path, 'regex']);
    return { kind: 'regex', value: re.source, ignoreCase: re.ignoreCase };
  }
  return { kind, value, ignoreCase: false };
}

function namedMatches(v: unknown, path: FieldPath, isHeader: boolean): NamedMatch[] {
  if (v === undefined || v === null) return [];
  if (!isObj(v)) throw new FieldProblem(path, `expected a mapping of name to match (e.g. \`end-user: {exact: jason}\`), found ${describeValue(v)}`);
  const out: NamedMatch[] = [];
  for (const key of Object.keys(v).sort()) {
    const at = [...path, key];
    if (key.startsWith('@request.auth.claims'))
      throw new FieldProblem(at, 'JWT claim based routing is only supported for gateway; nodemesh routes mesh traffic');
    const name = isHeader ? headerName(key, at, { pseudo: true }) : key;
    if (key === '') throw new FieldProblem(at, 'name cannot be empty');
    const raw = v[key];
    if (raw === null) throw new FieldProblem(at, `${isHeader ? 'header' : 'query param'} match ${key} cannot be null (write {} to require presence)`);
    // withoutHeaders: "`*` is NOT a RE2 style regex, it will be translated as present_match."
    if (isObj(raw) && raw.regex === '*') {
      out.push({ name, match: { kind: 'present', value: '', ignoreCase: false } });
      continue;
    }
    out.push({ name, match: stringMatch(raw, at, { allowPresent: true }) });
  }
  return out;
}

function routeDestination(v: unknown, path: FieldPath, count: number): Destination {
  const o = object(v, path);
  knownFields(o, path, ['destination', 'weight', 'headers']);
  if (o.destination === undefined || o.destination === null) throw new FieldProblem([...path, 'destination'], 'destination is required');
  const d = destination(o.destination, [...path, 'destination']);
  const weight = optInteger(o.weight, [...path, 'weight'], 0, 2147483647) ?? 0;
  // "If there is only one destination in a rule, it will receive all traffic."
  d.weight = count === 1 ? 100 : weight;
  d.headers = routeHeaders(o.headers, [...path, 'headers']);
  return d;
}

export function destination(v: unknown, path: FieldPath): Destination {
  const o = object(v, path);
  knownFields(o, path, ['host', 'subset', 'port']);
  const host = string(o.host, [...path, 'host']);
  if (host === '*') throw new FieldProblem([...path, 'host'], 'invalid destination host *');
  wildcardDomain(host, [...path, 'host']);
  const subset = optString(o.subset, [...path, 'subset']) ?? '';
  if (subset !== '') dns1123Label(subset, [...path, 'subset']);
  let port = 0;
  const sel = optObject(o.port, [...path, 'port']);
  if (sel) {
    knownFields(sel, [...path, 'port'], ['number']);
    port = integer(sel.number, [...path, 'port', 'number'], 1, 65535);
  }
  return { host, subset, port, weight: 100, headers: { request: emptyHeaderOps(), response: emptyHeaderOps() }, failStatus: 0 };
}

function istioRetries(v: unknown, path: FieldPath): RetryPolicy {
  const d = defaultRetryPolicy();
  if (v === undefined || v === null) return d; // Istio's default policy: 2 retries
  const o = object(v, path);
  knownFields(o, path, ['attempts', 'perTryTimeout', 'retryOn', 'retryRemoteLocalities', 'retryIgnorePreviousHosts', 'backoff']);
  const attempts = optInteger(o.attempts, [...path, 'attempts'], 0, 2147483647) ?? 0;
  if (attempts === 0 && (o.perTryTimeout !== undefined || o.retryOn !== undefined || o.retryRemoteLocalities !== undefined))
    throw new FieldProblem(path, 'http retry policy configured when attempts are set to 0 (disabled)');
  d.attempts = attempts;
  if (o.perTryTimeout !== undefined) d.perTryTimeoutMs = istioDuration(o.perTryTimeout, [...path, 'perTryTimeout']);
  if (o.backoff !== undefined) {
    d.backoffBaseMs = istioDuration(o.backoff, [...path, 'backoff']);
    d.backoffMaxMs = 10 * d.backoffBaseMs; // Envoy: "The default maximum interval is 10 times the base interval."
  }
  optBoolean(o.retryRemoteLocalities, [...path, 'retryRemoteLocalities']);
  optBoolean(o.retryIgnorePreviousHosts, [...path, 'retryIgnorePreviousHosts']);
  if (o.retryOn !== undefined) {
    const raw = string(o.retryOn, [...path, 'retryOn']);
    const on: string[] = [];
    const codes: number[] = [];
    for (const token of raw.split(',')) {
      // "Any integers are assumed to be status codes."
      if (/^\d+$/.test(token) && KNOWN_STATUS.has(Number(token))) codes.push(Number(token));
      else if (RETRY_ON.has(token)) on.push(token);
      else
        throw new FieldProblem([...path, 'retryOn'], `${JSON.stringify(token)} is not a valid retryOn policy${token.trim() !== token ? ' (remove the spaces around it)' : `; expected HTTP status codes or ${[...RETRY_ON].join(', ')}`}`);
    }
    // "If user has just specified HTTP status codes in retryOn but have not specified
    // "retriable-status-codes", let us add it."
    if (codes.length > 0 && !on.includes('retriable-status-codes')) on.push('retriable-status-codes');
    d.retryOn = on;
    d.retriableStatusCodes = codes;
  }
  return d;
}

function fault(v: unknown, path: FieldPath, notes: string[]): Fault {
  const o = object(v, path);
  knownFields(o, path, ['delay', 'abort']);
  if ((o.delay === undefined || o.delay === null) && (o.abort === undefined || o.abort === null))
    throw new FieldProblem(path, 'HTTP fault injection must have an abort and/or a delay');
  const f: Fault = {};
  const delay = optObject(o.delay, [...path, 'delay']);
  if (delay) {
    const at = [...path, 'delay'];
    knownFields(delay, at, ['fixedDelay', 'exponentialDelay', 'percentage', 'percent']);
    if (delay.exponentialDelay !== undefined) throw new FieldProblem([...at, 'exponentialDelay'], 'exponentialDelay not supported yet');
    if (delay.fixedDelay === undefined) throw new FieldProblem([...at, 'fixedDelay'], 'is required: expected a duration such as "5s"');
    f.delay = { fixedDelayMs: istioDuration(delay.fixedDelay, [...at, 'fixedDelay']), percentage: faultPercentage(delay, at, notes) };
  }
  const abort = optObject(o.abort, [...path, 'abort']);
  if (abort) {
    const at = [...path, 'abort'];
    knownFields(abort, at, ['httpStatus', 'grpcStatus', 'http2Error', 'percentage', 'percent']);
    if (abort.http2Error !== undefined) throw new FieldProblem([...at, 'http2Error'], 'HTTP/2 abort fault injection not supported yet');
    const pct = faultPercentage(abort, at, notes);
    if (abort.httpStatus !== undefined && abort.grpcStatus !== undefined) throw new FieldProblem(at, 'set either httpStatus or grpcStatus, not both');
    if (abort.httpStatus !== undefined) {
      const s = abort.httpStatus;
      if (typeof s !== 'number' || !Number.isInteger(s) || s < 200 || s > 600) throw new FieldProblem([...at, 'httpStatus'], `HTTP status ${describeValue(s)} is not in range 200-599`);
      f.abort = { httpStatus: s, grpcStatus: '', percentage: pct };
    } else if (abort.grpcStatus !== undefined) {
      const g = requiredOneOf(abort.grpcStatus, [...at, 'grpcStatus'], GRPC_STATUS);
      f.abort = { httpStatus: 0, grpcStatus: g, percentage: pct };
    } else notes.push(`${fmt(at)}: abort configured, but error type not set (httpStatus or grpcStatus); not applied`);
  }
  return f;
}

/** "If left unspecified, no request will be delayed" / "...no request will be aborted." */
function faultPercentage(o: Obj, path: FieldPath, notes: string[]): number {
  const p = optObject(o.percentage, [...path, 'percentage']);
  if (p) {
    knownFields(p, [...path, 'percentage'], ['value']);
    return p.value === undefined ? 0 : percent(p.value, [...path, 'percentage', 'value']);
  }
  if (o.percent !== undefined) {
    notes.push(`${fmt([...path, 'percent'])} is deprecated, use percentage.value`);
    return integer(o.percent, [...path, 'percent'], 0, 100);
  }
  return 0;
}

function istioMirrors(o: Obj, path: FieldPath): Mirror[] {
  if (o.mirror !== undefined && o.mirror !== null) {
    let pct = 100; // "If this field is absent, all the traffic (100%) will be mirrored."
    const p = optObject(o.mirrorPercentage, [...path, 'mirrorPercentage']);
    if (p) {
      knownFields(p, [...path, 'mirrorPercentage'], ['value']);
      pct = p.value === undefined ? 0 : percent(p.value, [...path, 'mirrorPercentage', 'value']);
    } else if (o.mirrorPercent !== undefined) pct = integer(o.mirrorPercent, [...path, 'mirrorPercent'], 0, 100);
    return [{ destination: { ...destination(o.mirror, [...path, 'mirror']), weight: 1 }, percentage: pct }];
  }
  return optArray(o.mirrors, [...path, 'mirrors']).map((m, i) => {
    const at = [...path, 'mirrors', i];
    const mo = object(m, at);
    knownFields(mo, at, ['destination', 'percentage']);
    if (mo.destination === undefined || mo.destination === null) throw new FieldProblem([...at, 'destination'], 'destination is required for mirrors');
    const p = optObject(mo.percentage, [...at, 'percentage']);
    const pct = p ? (p.value === undefined ? 0 : percent(p.value, [...at, 'percentage', 'value'])) : 100;
    return { destination: { ...destination(mo.destination, [...at, 'destination']), weight: 1 }, percentage: pct };
  });
}

function istioRedirect(v: unknown, path: FieldPath): Redirect {
  const o = object(v, path);
  knownFields(o, path, ['uri', 'authority', 'port', 'derivePort', 'scheme', 'redirectCode']);
  const r: Redirect = {
    uri: optString(o.uri, [...path, 'uri']) ?? '',
    replacePrefixMatch: '',
    authority: optString(o.authority, [...path, 'authority']) ?? '',
    scheme: optString(o.scheme, [...path, 'scheme']) ?? '',
    port: 0,
    // "On a redirect, overwrite the status code with this value. The default is 301."
    status: 301,
  };
  if (o.port !== undefined && o.derivePort !== undefined) throw new FieldProblem(path, 'set either port or derivePort, not both');
  if (o.port !== undefined) r.port = integer(o.port, [...path, 'port'], 1, 65535);
  if (o.derivePort !== undefined) {
    const derive = requiredOneOf(o.derivePort, [...path, 'derivePort'], ['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']);
    if (derive === 'FROM_PROTOCOL_DEFAULT') r.port = r.scheme === 'https' ? 443 : 80;
  }
  if (r.uri === '' && r.authority === '' && o.port === undefined && o.derivePort === undefined && r.scheme === '')
    throw new FieldProblem(path, 'redirect must specify URI, authority, scheme, or port');
  if (o.redirectCode !== undefined) {
    const c = o.redirectCode;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 300 || c > 399) throw new FieldProblem([...path, 'redirectCode'], `${describeValue(c)} is not a valid redirect code, must be 3xx`);
    r.status = c;
  }
  if (r.scheme !== '' && r.scheme !== 'http' && r.scheme !== 'https') throw new FieldProblem([...path, 'scheme'], 'invalid redirect scheme, must be "http" or "https"');
  return r;
}

function istioRewrite(v: unknown, path: FieldPath): Rewrite {
  const o = object(v, path);
  knownFields(o, path, ['uri', 'authority', 'uriRegexRewrite']);
  const r: Rewrite = { uri: optString(o.uri, [...path, 'uri']) ?? '', replacePrefixMatch: '', replaceFullPath: '', authority: optString(o.authority, [...path, 'authority']) ?? '' };
  const rr = optObject(o.uriRegexRewrite, [...path, 'uriRegexRewrite']);
  if (r.uri !== '' && rr) throw new FieldProblem(path, 'rewrite may only contain one of URI or UriRegexRewrite');
  if (r.uri === '' && !rr && r.authority === '') throw new FieldProblem(path, 'rewrite must specify at least one of URI, UriRegexRewrite, or authority');
  if (rr) {
    const at = [...path, 'uriRegexRewrite'];
    knownFields(rr, at, ['match', 'rewrite']);
    if (typeof rr.match !== 'string' || rr.match === '' || typeof rr.rewrite !== 'string' || rr.rewrite === '')
      throw new FieldProblem(at, 'UriRegexRewrite requires both Rewrite and Match fields to be specified');
    r.uriRegex = { match: checkRegex(rr.match, [...at, 'match']).source, rewrite: rr.rewrite };
  }
  return r;
}

function directResponse(v: unknown, path: FieldPath): { status: number; body: string } {
  const o = object(v, path);
  knownFields(o, path, ['status', 'body']);
  const status = o.status;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 600)
    throw new FieldProblem([...path, 'status'], `HTTP status ${describeValue(status)} is not in range 200-599`);
  let body = '';
  const b = optObject(o.body, [...path, 'body']);
  if (b) {
    knownFields(b, [...path, 'body'], ['string', 'bytes']);
    if (b.string !== undefined && b.bytes !== undefined) throw new FieldProblem([...path, 'body'], 'set either string or bytes, not both');
    body = b.bytes !== undefined ? Buffer.from(string(b.bytes, [...path, 'body', 'bytes']), 'base64').toString('utf8') : (optString(b.string, [...path, 'body', 'string']) ?? '');
  }
  if (Buffer.byteLength(body) > 1024 * 1024) throw new FieldProblem([...path, 'body'], 'large direct_responses may impact control plane performance, must be less than 1MB');
  return { status, body };
}

/** `headers: {request: {set, add, remove}, response: {...}}` */
export function routeHeaders(v: unknown, path: FieldPath): { request: HeaderOps; response: HeaderOps } {
  const o = optObject(v, path);
  if (!o) return { request: emptyHeaderOps(), response: emptyHeaderOps() };
  knownFields(o, path, ['request', 'response']);
  return { request: headerOps(o.request, [...path, 'request'], true), response: headerOps(o.response, [...path, 'response'], false) };
}

function headerOps(v: unknown, path: FieldPath, request: boolean): HeaderOps {
  const ops = emptyHeaderOps();
  const o = optObject(v, path);
  if (!o) return ops;
  knownFields(o, path, ['set', 'add', 'remove']);
  const nameFor = (k: string, at: FieldPath, write: boolean) => {
    if (k === '') throw new FieldProblem(at, 'header name cannot be empty');
    const lower = k.toLowerCase();
    const authority = lower === 'host' || lower === ':authority';
    // ValidateHTTPHeaderWithAuthorityOperationName / ValidateHTTPHeaderOperationName
    if (!(request && write && authority)) {
      if (lower === 'host') throw new FieldProblem(at, `invalid header ${JSON.stringify(k)}: cannot set Host header`);
      if (k.startsWith(':')) throw new FieldProblem(at, `invalid header ${JSON.stringify(k)}: header cannot have ":" prefix`);
    }
    return authority ? ':authority' : headerName(k, at);
  };
  for (const op of ['set', 'add'] as const) {
    const m = optObject(o[op], [...path, op]);
    if (!m) continue;
    for (const k of Object.keys(m).sort()) ops[op][nameFor(k, [...path, op, k], true)] = headerValue(m[k], [...path, op, k]);
  }
  ops.remove = optArray(o.remove, [...path, 'remove']).map((k, i) => nameFor(string(k, [...path, 'remove', i]), [...path, 'remove', i], false));
  return ops;
}

/** Istio's validateAuthorityRewrite: "authority header cannot be set multiple times". Moves it out of the header ops. */
function authorityFromHeaders(ops: HeaderOps, rewrite: Rewrite | undefined, path: FieldPath): string {
  let current = rewrite?.authority ?? '';
  for (const op of ['set', 'add'] as const) {
    const v = ops[op][':authority'];
    if (v === undefined) continue;
    if (current !== '') throw new FieldProblem([...path, op], `authority header cannot be set multiple times: have ${JSON.stringify(current)}, attempting to set ${JSON.stringify(v)}`);
    current = v;
    delete ops[op][':authority'];
  }
  return current === (rewrite?.authority ?? '') ? '' : current;
}
