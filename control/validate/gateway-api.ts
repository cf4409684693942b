// Validation of gateway.networking.k8s.io HTTPRoute and TCPRoute (for the mesh: GAMMA,
// parentRefs to a Service) and ReferenceGrant, with the checks the Gateway API CRDs make
// (OpenAPI limits and CEL rules; their messages are quoted) and the defaults they fill in.
// The result is in the snapshot's vocabulary; attaching routes to Services, precedence
// across routes and backend resolution are the compiler's (compile/routing-gateway.ts).
import { defaultRetryPolicy, type HeaderOps, type HttpMatch, type NamedMatch, type Redirect, type Rewrite, type StringMatch } from '../api/snapshot-routing.js';
import type { ValidatedBody } from '../model/resources.js';
import {
  emptyHeaderOps,
  type BackendRef,
  type GatewayRouteSpec,
  type GatewayRule,
  type ObjectRef,
  type ParentRef,
  type ReferenceGrantSpec,
  type TcpRouteSpec,
} from '../model/routing.js';
import { formatFieldPath as fmt, type FieldPath } from '../model/source-document.js';
import { gatewayDuration } from './durations.js';
import {
  FieldProblem,
  creationTimestampIso,
  describeValue,
  integer,
  knownFields,
  maxItems,
  object,
  oneOf,
  optArray,
  optInteger,
  optObject,
  optString,
  requiredOneOf,
  string,
  type Obj,
} from './fields.js';
import { headerName, headerValue } from './headers.js';
import { dns1123Label, dns1123Subdomain, wildcardDomain } from './names.js';
import { checkRegex } from './regex.js';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
// HTTPPathMatch: "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$)"
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/;

export function validateHttpRoute(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const s = object(o.spec, ['spec']);
  knownFields(s, ['spec'], ['parentRefs', 'hostnames', 'rules', 'useDefaultGateways']);
  const notes: string[] = [];
  const spec: GatewayRouteSpec = { parentRefs: parentRefs(s.parentRefs, notes), rules: [], createdAt: creationTimestampIso(o) };
  hostnames(s.hostnames, spec.parentRefs, notes);
  // `rules` defaults to `{{matches: {{path: {type: "PathPrefix", value: "/"}}}}}`
  const rules = s.rules === undefined || s.rules === null ? [{}] : optArray(s.rules, ['spec', 'rules']);
  if (rules.length === 0) throw new FieldProblem(['spec', 'rules'], 'expected at least one rule');
  maxItems(rules, ['spec', 'rules'], 16, 'rules');
  const ruleNames = new Set<string>();
  let totalMatches = 0;
  rules.forEach((r, i) => {
    const rule = httpRule(r, ['spec', 'rules', i], i, notes);
    if (rule.name !== '') {
      if (ruleNames.has(rule.name)) throw new FieldProblem(['spec', 'rules', i, 'name'], 'Rule name must be unique within the route');
      ruleNames.add(rule.name);
    }
    totalMatches += rule.matches.length;
    spec.rules.push(rule);
  });
  if (totalMatches > 128) throw new FieldProblem(['spec', 'rules'], 'While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128');
  return { body: { kind: 'HTTPRoute', spec }, notes };
}

function parentRefs(v: unknown, notes: string[]): ParentRef[] {
  const list = optArray(v, ['spec', 'parentRefs']);
  maxItems(list, ['spec', 'parentRefs'], 32, 'parentRefs');
  const refs = list.map((p, i) => {
    const at = ['spec', 'parentRefs', i];
    const po = object(p, at);
    knownFields(po, at, ['group', 'kind', 'namespace', 'name', 'sectionName', 'port']);
    const kind = optString(po.kind, [...at, 'kind']) ?? 'Gateway';
    let group = optString(po.group, [...at, 'group']);
    if (kind === 'Service' && (group === undefined || group === 'core')) {
      // ParentReference.group defaults to gateway.networking.k8s.io; Istio (and its
      // samples) read `kind: Service` without a group as the core Service, and so does nodemesh
      if (group === undefined) notes.push(`${fmt([...at, 'group'])} is absent: read as the core Service (group ""), as Istio does`);
      group = '';
    }
    const ref: ParentRef = {
      group: group ?? GATEWAY_GROUP,
      kind,
      namespace: po.namespace === undefined ? '' : dns1123Label(string(po.namespace, [...at, 'namespace']), [...at, 'namespace']),
      name: dns1123Subdomain(string(po.name, [...at, 'name']), [...at, 'name']),
      sectionName: po.sectionName === undefined ? '' : dns1123Subdomain(string(po.sectionName, [...at, 'sectionName']), [...at, 'sectionName']),
      port: optInteger(po.port, [...at, 'port'], 1, 65535) ?? 0,
    };
    if (!(ref.group === '' && ref.kind === 'Service'))
      notes.push(`${fmt(at)} (${ref.kind} ${ref.name}) is not applied: nodemesh attaches routes to Services (GAMMA) only, it runs no gateways`);
    return ref;
  });
  if (refs.length === 0) notes.push('spec.parentRefs is empty: the route attaches to nothing');
  return refs;
}

function hostnames(v: unknown, parents: ParentRef[], notes: string[]): void {
  const list = optArray(v, ['spec', 'hostnames']);
  maxItems(list, ['spec', 'hostnames'], 16, 'hostnames');
  list.forEach((h, i) => wildcardDomain(string(h, ['spec', 'hostnames', i]), ['spec', 'hostnames', i]));
  if (list.length > 0 && parents.some((p) => p.group === '' && p.kind === 'Service'))
    notes.push('spec.hostnames does not apply to Service parents (GAMMA): the route applies to every request sent to the Service');
}

function httpRule(v: unknown, path: FieldPath, index: number, notes: string[]): GatewayRule {
  const o = object(v, path);
  knownFields(o, path, ['name', 'matches', 'filters', 'backendRefs', 'timeouts', 'retry', 'sessionPersistence']);
  const rawMatches = o.matches === undefined || o.matches === null ? [{}] : optArray(o.matches, [...path, 'matches']);
  maxItems(rawMatches, [...path, 'matches'], 64, 'matches');
  const rule: GatewayRule = {
    index,
    name: o.name === undefined ? '' : dns1123Subdomain(string(o.name, [...path, 'name']), [...path, 'name']),
    // "If no matches are specified, the default is a prefix path match on "/""
    matches: rawMatches.length === 0 ? [httpMatch({}, [...path, 'matches', 0])] : rawMatches.map((m, i) => httpMatch(m, [...path, 'matches', i])),
    backendRefs: [],
    headers: { request: emptyHeaderOps(), response: emptyHeaderOps() },
    mirrors: [],
    timeoutMs: 0,
    retries: defaultRetryPolicy(),
  };
  const filters = optArray(o.filters, [...path, 'filters']);
  maxItems(filters, [...path, 'filters'], 16, 'filters');
  applyFilters(filters, [...path, 'filters'], rule, 'rule');
  const backends = optArray(o.backendRefs, [...path, 'backendRefs']);
  maxItems(backends, [...path, 'backendRefs'], 16, 'backendRefs');
  if (backends.length > 0 && rule.redirect) throw new FieldProblem([...path, 'filters'], 'RequestRedirect filter must not be used together with backendRefs');
  rule.backendRefs = backends.map((b, i) => backendRef(b, [...path, 'backendRefs', i], true));
  const prefixReplace = rule.redirect?.replacePrefixMatch || rule.rewrite?.replacePrefixMatch;
  if (prefixReplace && (rule.matches.length !== 1 || rule.matches[0]!.uri?.kind !== 'pathPrefix')) {
    const which = rule.redirect ? 'RequestRedirect' : 'URLRewrite';
    throw new FieldProblem([...path, 'matches'], `When using ${which} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified`);
  }
  timeouts(o.timeouts, [...path, 'timeouts'], rule);
  retry(o.retry, [...path, 'retry'], rule);
  if (o.sessionPersistence !== undefined) notes.push(`${fmt([...path, 'sessionPersistence'])} is not applied by nodemesh`);
  return rule;
}

function httpMatch(v: unknown, path: FieldPath): HttpMatch {
  const o = object(v, path);
  knownFields(o, path, ['path', 'headers', 'queryParams', 'method']);
  const m: HttpMatch = { headers: [], withoutHeaders: [], queryParams: [], port: 0, sourceLabels: {}, sourceNamespace: '' };
  // `path` defaults to `{type: "PathPrefix", value: "/"}`
  const p = optObject(o.path, [...path, 'path']) ?? {};
  knownFields(p, [...path, 'path'], ['type', 'value']);
  const type = oneOf(p.type, [...path, 'path', 'type'], ['Exact', 'PathPrefix', 'RegularExpression'], 'PathPrefix');
  const value = p.value === undefined || p.value === null ? '/' : string(p.value, [...path, 'path', 'value']);
  m.uri = pathMatch(type, value, [...path, 'path', 'value']);
  m.headers = nameValueMatches(o.headers, [...path, 'headers'], true);
  m.queryParams = nameValueMatches(o.queryParams, [...path, 'queryParams'], false);
  if (o.method !== undefined && o.method !== null) m.method = { kind: 'exact', value: oneOf(o.method, [...path, 'method'], METHODS)!, ignoreCase: false };
  return m;
}

function pathMatch(type: 'Exact' | 'PathPrefix' | 'RegularExpression', value: string, path: FieldPath): StringMatch {
  if (value.length > 1024) throw new FieldProblem(path, 'at most 1024 characters');
  if (type === 'RegularExpression') {
    const re = checkRegex(value, path);
    return { kind: 'regex', value: re.source, ignoreCase: re.ignoreCase };
  }
  const rules: [boolean, string][] = [
    [!value.startsWith('/'), "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"],
    [value.includes('//'), "must not contain '//' when type one of ['Exact', 'PathPrefix']"],
    [value.includes('/./'), "must not contain '/./' when type one of ['Exact', 'PathPrefix']"],
    [value.includes('/../'), "must not contain '/../' when type one of ['Exact', 'PathPrefix']"],
    [/%2f/i.test(value), "must not contain '%2f' or '%2F' when type one of ['Exact', 'PathPrefix']"],
    [value.includes('#'), "must not contain '#' when type one of ['Exact', 'PathPrefix']"],
    [value.endsWith('/..'), "must not end with '/..' when type one of ['Exact', 'PathPrefix']"],
    [value.endsWith('/.'), "must not end with '/.' when type one of ['Exact', 'PathPrefix']"],
    [!PATH_CHARS.test(value), "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']"],
  ];
  for (const [bad, message] of rules) if (bad) throw new FieldProblem(path, `${JSON.stringify(value)}: ${message}`);
  if (type === 'Exact') return { kind: 'exact', value, ignoreCase: false };
  // PathPrefix: "When specified, a trailing `/` is ignored."
  return { kind: 'pathPrefix', value: value.length > 1 ? value.replace(/\/$/, '') : value, ignoreCase: false };
}

function nameValueMatches(v: unknown, path: FieldPath, isHeader: boolean): NamedMatch[] {
  const list = optArray(v, path);
  maxItems(list, path, 16, 'entries');
  const out: NamedMatch[] = [];
  const seen = new Set<string>();
  list.forEach((e, i) => {
    const at = [...path, i];
    const o = object(e, at);
    knownFields(o, at, ['type', 'name', 'value']);
    const raw = string(o.name, [...at, 'name']);
    const name = isHeader ? headerName(raw, [...at, 'name']) : headerName(raw, [...at, 'name']) && raw;
    if (seen.has(raw)) throw new FieldProblem([...at, 'name'], `duplicate ${isHeader ? 'header' : 'query param'} name ${JSON.stringify(raw)} (names are the list's keys)`);
    seen.add(raw);
    const type = oneOf(o.type, [...at, 'type'], ['Exact', 'RegularExpression'], 'Exact');
    const value = string(o.value, [...at, 'value']);
    if (value.length < 1 || value.length > (isHeader ? 4096 : 1024)) throw new FieldProblem([...at, 'value'], `expected 1-${isHeader ? 4096 : 1024} characters`);
    // "If multiple entries specify equivalent header names, only the first entry with an
    // equivalent name MUST be considered for a match."
    if (isHeader && out.some((x) => x.name === name)) return;
    if (type === 'RegularExpression') {
      const re = checkRegex(value, [...at, 'value']);
      out.push({ name, match: { kind: 'regex', value: re.source, ignoreCase: re.ignoreCase } });
    } else out.push({ name, match: { kind: 'exact', value, ignoreCase: false } });
  });
  return out;
}

type FilterScope = 'rule' | 'backend';

/** Applies a rule's (or a backendRef's) filters onto `target`. */
function applyFilters(filters: unknown[], path: FieldPath, target: { headers: { request: HeaderOps; response: HeaderOps }; redirect?: Redirect; rewrite?: Rewrite; mirrors?: GatewayRule['mirrors'] }, scope: FilterScope): void {
  const count = new Map<string, number>();
  const fields: Record<string, string> = {
    RequestHeaderModifier: 'requestHeaderModifier',
    ResponseHeaderModifier: 'responseHeaderModifier',
    RequestMirror: 'requestMirror',
    RequestRedirect: 'requestRedirect',
    URLRewrite: 'urlRewrite',
    CORS: 'cors',
    ExternalAuth: 'externalAuth',
    ExtensionRef: 'extensionRef',
  };
  filters.forEach((f, i) => {
    const at = [...path, i];
    const o = object(f, at);
    knownFields(o, at, ['type', ...Object.values(fields)]);
    const type = requiredOneOf(o.type, [...at, 'type'], Object.keys(fields));
    for (const [t, field] of Object.entries(fields)) {
      if (t !== type && o[field] !== undefined) throw new FieldProblem([...at, field], `filter.${field} must be nil if the filter.type is not ${t}`);
    }
    const field = fields[type]!;
    if (o[field] === undefined || o[field] === null) throw new FieldProblem([...at, field], `filter.${field} must be specified for ${type} filter.type`);
    const n = (count.get(type) ?? 0) + 1;
    count.set(type, n);
    if (n > 1 && type !== 'RequestMirror' && type !== 'ExtensionRef') throw new FieldProblem(at, `${type} filter cannot be repeated`);
    if ((type === 'URLRewrite' && count.has('RequestRedirect')) || (type === 'RequestRedirect' && count.has('URLRewrite')))
      throw new FieldProblem(at, 'May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both');
    const body = [...at, field];
    switch (type) {
      case 'RequestHeaderModifier':
        target.headers.request = headerFilter(o[field], body);
        break;
      case 'ResponseHeaderModifier':
        target.headers.response = headerFilter(o[field], body);
        break;
      case 'RequestRedirect':
        if (scope === 'backend') throw new FieldProblem(at, 'RequestRedirect on a backendRef is not supported by nodemesh; put it in the rule\'s filters');
        target.redirect = redirectFilter(o[field], body);
        break;
      case 'URLRewrite':
        if (scope === 'backend') throw new FieldProblem(at, 'URLRewrite on a backendRef is not supported by nodemesh; put it in the rule\'s filters');
        target.rewrite = rewriteFilter(o[field], body);
        break;
      case 'RequestMirror':
        if (scope === 'backend') throw new FieldProblem(at, 'RequestMirror on a backendRef is not supported by nodemesh; put it in the rule\'s filters');
        target.mirrors!.push(mirrorFilter(o[field], body));
        break;
      default:
        // "If a reference to a custom filter type cannot be resolved, the filter MUST NOT be skipped."
        throw new FieldProblem([...at, 'type'], `${type} filters are not supported by nodemesh (the route would otherwise apply without it)`);
    }
  });
}

/** "Only one action for a given header name is permitted." */
function headerFilter(v: unknown, path: FieldPath): HeaderOps {
  const o = object(v, path);
  knownFields(o, path, ['set', 'add', 'remove']);
  const ops = emptyHeaderOps();
  const seen = new Map<string, string>();
  const claim = (name: string, where: string, at: FieldPath) => {
    const before = seen.get(name);
    if (before) throw new FieldProblem(at, `header ${JSON.stringify(name)} already has an action (${before}): only one action for a given header name is permitted`);
    seen.set(name, where);
  };
  for (const op of ['set', 'add'] as const) {
    const list = optArray(o[op], [...path, op]);
    maxItems(list, [...path, op], 16, 'entries');
    list.forEach((h, i) => {
      const at = [...path, op, i];
      const ho = object(h, at);
      knownFields(ho, at, ['name', 'value']);
      const name = headerName(ho.name, [...at, 'name']);
      claim(name, op, [...at, 'name']);
      const value = headerValue(ho.value, [...at, 'value']);
      if (value.length < 1 || value.length > 4096) throw new FieldProblem([...at, 'value'], 'expected 1-4096 characters');
      ops[op][name] = value;
    });
  }
  const remove = optArray(o.remove, [...path, 'remove']);
  maxItems(remove, [...path, 'remove'], 16, 'entries');
  ops.remove = remove.map((r, i) => {
    const name = headerName(r, [...path, 'remove', i]);
    claim(name, 'remove', [...path, 'remove', i]);
    return name;
  });
  return ops;
}

function pathModifier(v: unknown, path: FieldPath): { full?: string; prefix?: string } {
  const o = object(v, path);
  knownFields(o, path, ['type', 'replaceFullPath', 'replacePrefixMatch']);
  const type = requiredOneOf(o.type, [...path, 'type'], ['ReplaceFullPath', 'ReplacePrefixMatch']);
  if (type === 'ReplaceFullPath') {
    if (o.replacePrefixMatch !== undefined) throw new FieldProblem([...path, 'replacePrefixMatch'], "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set");
    if (o.replaceFullPath === undefined) throw new FieldProblem([...path, 'replaceFullPath'], "replaceFullPath must be specified when type is set to 'ReplaceFullPath'");
    return { full: string(o.replaceFullPath, [...path, 'replaceFullPath']) || '/' };
  }
  if (o.replaceFullPath !== undefined) throw new FieldProblem([...path, 'replaceFullPath'], "type must be 'ReplaceFullPath' when replaceFullPath is set");
  if (o.replacePrefixMatch === undefined) throw new FieldProblem([...path, 'replacePrefixMatch'], "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'");
  // per the spec's table, "" and "/" give the same paths (/foo/bar with prefix /foo → /bar)
  return { prefix: string(o.replacePrefixMatch, [...path, 'replacePrefixMatch']) || '/' };
}

function redirectFilter(v: unknown, path: FieldPath): Redirect {
  const o = object(v, path);
  knownFields(o, path, ['scheme', 'hostname', 'path', 'port', 'statusCode']);
  const scheme = oneOf(o.scheme, [...path, 'scheme'], ['http', 'https']) ?? '';
  const hostname = o.hostname === undefined ? '' : dns1123Subdomain(string(o.hostname, [...path, 'hostname']), [...path, 'hostname']);
  const mod = o.path === undefined ? {} : pathModifier(o.path, [...path, 'path']);
  const status = o.statusCode === undefined || o.statusCode === null ? 302 : o.statusCode; // "+kubebuilder:default=302"
  if (typeof status !== 'number' || ![301, 302, 303, 307, 308].includes(status)) throw new FieldProblem([...path, 'statusCode'], `expected one of 301, 302, 303, 307, 308, found ${describeValue(status)}`);
  // "If redirect scheme is not-empty, the redirect port MUST be the well-known port
  // associated with the redirect scheme." (0 = the request's port)
  const port = o.port === undefined || o.port === null ? (scheme === 'https' ? 443 : scheme === 'http' ? 80 : 0) : integer(o.port, [...path, 'port'], 1, 65535);
  return { uri: mod.full ?? '', replacePrefixMatch: mod.prefix ?? '', authority: hostname, scheme, port, status };
}

function rewriteFilter(v: unknown, path: FieldPath): Rewrite {
  const o = object(v, path);
  knownFields(o, path, ['hostname', 'path']);
  const mod = o.path === undefined ? {} : pathModifier(o.path, [...path, 'path']);
  const authority = o.hostname === undefined ? '' : dns1123Subdomain(string(o.hostname, [...path, 'hostname']), [...path, 'hostname']);
  return { uri: '', replacePrefixMatch: mod.prefix ?? '', replaceFullPath: mod.full ?? '', authority };
}

function mirrorFilter(v: unknown, path: FieldPath): GatewayRule['mirrors'][number] {
  const o = object(v, path);
  knownFields(o, path, ['backendRef', 'percent', 'fraction']);
  if (o.percent !== undefined && o.fraction !== undefined) throw new FieldProblem(path, 'Only one of percent or fraction may be specified in HTTPRequestMirrorFilter');
  let percentage = 100; // "If neither field is specified, 100% of requests will be mirrored."
  if (o.percent !== undefined) percentage = integer(o.percent, [...path, 'percent'], 0, 100);
  const f = optObject(o.fraction, [...path, 'fraction']);
  if (f) {
    knownFields(f, [...path, 'fraction'], ['numerator', 'denominator']);
    const num = integer(f.numerator, [...path, 'fraction', 'numerator'], 0, 2147483647);
    const den = f.denominator === undefined ? 100 : integer(f.denominator, [...path, 'fraction', 'denominator'], 1, 2147483647);
    if (num > den) throw new FieldProblem([...path, 'fraction'], 'numerator must be less than or equal to denominator');
    percentage = (num / den) * 100;
  }
  return { backend: objectRef(o.backendRef, [...path, 'backendRef']), percentage };
}

/** BackendObjectReference: group "" and kind Service by default; a Service needs a port. */
function objectRef(v: unknown, path: FieldPath, extra: string[] = []): ObjectRef {
  const o = object(v, path);
  knownFields(o, path, ['group', 'kind', 'name', 'namespace', 'port', ...extra]);
  const ref: ObjectRef = {
    group: optString(o.group, [...path, 'group']) ?? '',
    kind: optString(o.kind, [...path, 'kind']) ?? 'Service',
    name: dns1123Subdomain(string(o.name, [...path, 'name']), [...path, 'name']),
    namespace: o.namespace === undefined ? '' : dns1123Label(string(o.namespace, [...path, 'namespace']), [...path, 'namespace']),
    port: optInteger(o.port, [...path, 'port'], 1, 65535) ?? 0,
  };
  if (ref.group === '' && ref.kind === 'Service' && ref.port === 0) throw new FieldProblem([...path, 'port'], 'Must have port for Service reference');
  return ref;
}

function backendRef(v: unknown, path: FieldPath, withFilters: boolean): BackendRef {
  const ref = objectRef(v, path, withFilters ? ['weight', 'filters'] : ['weight']);
  const o = v as Obj;
  // "If unspecified, weight defaults to 1."
  const weight = optInteger(o.weight, [...path, 'weight'], 0, 1_000_000) ?? 1;
  const b: BackendRef = { ...ref, weight, headers: { request: emptyHeaderOps(), response: emptyHeaderOps() } };
  if (withFilters) applyFilters(optArray(o.filters, [...path, 'filters']), [...path, 'filters'], b, 'backend');
  return b;
}

function timeouts(v: unknown, path: FieldPath, rule: GatewayRule): void {
  const o = optObject(v, path);
  if (!o) return;
  knownFields(o, path, ['request', 'backendRequest']);
  const request = o.request === undefined ? undefined : gatewayDuration(o.request, [...path, 'request']);
  const backend = o.backendRequest === undefined ? undefined : gatewayDuration(o.backendRequest, [...path, 'backendRequest']);
  if (request !== undefined && backend !== undefined && request !== 0 && backend > request)
    throw new FieldProblem([...path, 'backendRequest'], 'backendRequest timeout cannot be longer than request timeout');
  // "Setting a timeout to the zero duration (e.g. "0s") SHOULD disable the timeout completely."
  rule.timeoutMs = request ?? 0;
  // BackendRequest: "a timeout for an individual request from the gateway to a backend" —
  // each try, i.e. Envoy's per-try timeout
  if (backend !== undefined) rule.retries.perTryTimeoutMs = backend;
}

/** GEP-1731 `retry: {codes, attempts, backoff}`. */
function retry(v: unknown, path: FieldPath, rule: GatewayRule): void {
  const o = optObject(v, path);
  if (!o) return;
  knownFields(o, path, ['codes', 'attempts', 'backoff']);
  const codes = optArray(o.codes, [...path, 'codes']).map((c, i) => integer(c, [...path, 'codes', i], 400, 599));
  codes.forEach((c, i) => {
    if (codes.indexOf(c) < i) throw new FieldProblem([...path, 'codes', i], `duplicate code ${c} (codes is a set)`);
  });
  // "An explicit zero value MUST disable retries." Unset: Istio's default, 2.
  rule.retries.attempts = optInteger(o.attempts, [...path, 'attempts'], 0, 2147483647) ?? rule.retries.attempts;
  if (codes.length > 0) {
    rule.retries.retriableStatusCodes = codes;
    if (!rule.retries.retryOn.includes('retriable-status-codes')) rule.retries.retryOn.push('retriable-status-codes');
  }
  if (o.backoff !== undefined) {
    const base = gatewayDuration(o.backoff, [...path, 'backoff']);
    if (base > 0) {
      rule.retries.backoffBaseMs = base;
      rule.retries.backoffMaxMs = 10 * base;
    }
  }
}

// ---- TCPRoute, ReferenceGrant ----------------------------------------------------------

export function validateTcpRoute(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const s = object(o.spec, ['spec']);
  knownFields(s, ['spec'], ['parentRefs', 'rules', 'useDefaultGateways']);
  const notes: string[] = [];
  const rules = optArray(s.rules, ['spec', 'rules']);
  if (rules.length === 0) throw new FieldProblem(['spec', 'rules'], 'expected at least one rule');
  maxItems(rules, ['spec', 'rules'], 16, 'rules');
  const spec: TcpRouteSpec = {
    parentRefs: parentRefs(s.parentRefs, notes),
    rules: rules.map((r, i) => {
      const at = ['spec', 'rules', i];
      const ro = object(r, at);
      knownFields(ro, at, ['name', 'backendRefs']);
      const backends = optArray(ro.backendRefs, [...at, 'backendRefs']);
      if (backends.length === 0) throw new FieldProblem([...at, 'backendRefs'], 'expected at least one backendRef');
      maxItems(backends, [...at, 'backendRefs'], 16, 'backendRefs');
      return { backendRefs: backends.map((b, j) => backendRef(b, [...at, 'backendRefs', j], false)) };
    }),
    createdAt: creationTimestampIso(o),
  };
  if (rules.length > 1) notes.push('spec.rules beyond the first are not applied: a TCP connection has nothing to choose a rule by');
  return { body: { kind: 'TCPRoute', spec }, notes };
}

export function validateReferenceGrant(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const s = object(o.spec, ['spec']);
  knownFields(s, ['spec'], ['from', 'to']);
  const from = optArray(s.from, ['spec', 'from']);
  const to = optArray(s.to, ['spec', 'to']);
  if (from.length < 1 || from.length > 16) throw new FieldProblem(['spec', 'from'], `expected 1-16 entries, found ${from.length}`);
  if (to.length < 1 || to.length > 16) throw new FieldProblem(['spec', 'to'], `expected 1-16 entries, found ${to.length}`);
  const spec: ReferenceGrantSpec = {
    from: from.map((f, i) => {
      const at = ['spec', 'from', i];
      const fo = object(f, at);
      knownFields(fo, at, ['group', 'kind', 'namespace']);
      return { group: string(fo.group, [...at, 'group']), kind: string(fo.kind, [...at, 'kind']), namespace: dns1123Label(string(fo.namespace, [...at, 'namespace']), [...at, 'namespace']) };
    }),
    to: to.map((t, i) => {
      const at = ['spec', 'to', i];
      const tobj = object(t, at);
      knownFields(tobj, at, ['group', 'kind', 'name']);
      return { group: string(tobj.group, [...at, 'group']), kind: string(tobj.kind, [...at, 'kind']), name: optString(tobj.name, [...at, 'name']) ?? '' };
    }),
  };
  return { body: { kind: 'ReferenceGrant', spec }, notes: [] };
}
