// Validation of security.istio.io PeerAuthentication and AuthorizationPolicy (v1beta1, v1)
// as Istio validates them (pkg/config/validation: ValidatePeerAuthentication,
// ValidateAuthorizationPolicy; pkg/config/security: ValidateAttribute, ValidateIPs,
// ValidatePorts, CheckServiceAccount, CheckValidPathTemplate), plus what a CRD with
// `preserveUnknownFields: false` and kubectl's strict field validation reject: unknown
// fields. A typo such as `rule:` for `rules:` would otherwise turn an ALLOW policy into
// "allow nothing" without a word.
//
// AuthorizationPolicy rules come out in the snapshot's normalised shape (attribute
// matches, see control/api/snapshot-security.ts); what nodemesh cannot evaluate is
// accepted and explained in the resource's notes.
import { isIP } from 'node:net';
import type { AttributeMatch, AuthorizationAction, AuthorizationRule, MatchClause, ValueMatch } from '../api/snapshot-security.js';
import type { ValidatedBody } from '../model/resources.js';
import type { AuthorizationPolicySpec, MtlsModeSpec, PeerAuthenticationSpec, PolicyTargetRef } from '../model/security.js';
import type { FieldPath } from '../model/source-document.js';
import {
  FieldProblem,
  knownFields,
  maxItems,
  metadata,
  object,
  oneOf,
  optArray,
  optObject,
  optString,
  optTimestamp,
  string,
  stringList,
  stringMap,
  workloadSelectorLabels,
  type Obj,
} from './fields.js';
import { dns1123Subdomain } from './names.js';
import { maskIpv4 } from '../../common/ip.js';

const MTLS_MODES: readonly MtlsModeSpec[] = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'];
const ACTIONS: readonly AuthorizationAction[] = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'];
const DRY_RUN = 'istio.io/dry-run';

// ---------------------------------------------------------------------------------------
// PeerAuthentication

export function validatePeerAuthentication(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const m = metadata(o);
  if (stringMap(m.annotations, ['metadata', 'annotations'])[DRY_RUN] !== undefined)
    throw new FieldProblem(['metadata', 'annotations', DRY_RUN], `is supported only on AuthorizationPolicy (ALLOW or DENY); remove it`);
  const s = optObject(o.spec, ['spec']) ?? {};
  knownFields(s, ['spec'], ['selector', 'mtls', 'portLevelMtls']);
  const selector = workloadSelector(s.selector, ['spec', 'selector']);
  const mtls = optObject(s.mtls, ['spec', 'mtls']);
  if (mtls) knownFields(mtls, ['spec', 'mtls'], ['mode']);
  const mode = oneOf(mtls?.mode, ['spec', 'mtls', 'mode'], MTLS_MODES, 'UNSET');

  const portLevelMtls: PeerAuthenticationSpec['portLevelMtls'] = [];
  if (s.portLevelMtls !== undefined && s.portLevelMtls !== null) {
    const at = ['spec', 'portLevelMtls'];
    const ports = object(s.portLevelMtls, at);
    // "mesh/namespace peer authentication cannot have port level mTLS"
    if (!selector)
      throw new FieldProblem(
        at,
        'is allowed only with a selector: a mesh- or namespace-level PeerAuthentication cannot have port-level mTLS',
      );
    // "port level mTLS, if defined, must have at least one element"
    if (Object.keys(ports).length === 0) throw new FieldProblem(at, 'if defined, must have at least one port');
    for (const [key, value] of Object.entries(ports)) {
      const pat = [...at, key];
      const port = /^[0-9]+$/.test(key) ? Number(key) : NaN;
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        throw new FieldProblem(pat, `${JSON.stringify(key)} is not a port: expected a workload port number 1-65535 as the key`);
      const pm = object(value, pat);
      knownFields(pm, pat, ['mode']);
      portLevelMtls.push({ port, mode: oneOf(pm.mode, [...pat, 'mode'], MTLS_MODES, 'UNSET') });
    }
    portLevelMtls.sort((a, b) => a.port - b.port);
  }
  const notes: string[] = [];
  if (mode === 'DISABLE' || portLevelMtls.some((p) => p.mode === 'DISABLE'))
    notes.push(
      'DISABLE is treated as PERMISSIVE (as in Istio ambient): the node proxy accepts plaintext and still accepts mTLS from other node proxies',
    );
  const spec: PeerAuthenticationSpec = { selector, mode, portLevelMtls, createdAt: optTimestamp(m.creationTimestamp, ['metadata', 'creationTimestamp']) ?? 0 };
  return { body: { kind: 'PeerAuthentication', spec }, notes };
}

// ---------------------------------------------------------------------------------------
// AuthorizationPolicy

interface Ctx {
  namespace: string;
  action: AuthorizationAction;
  notes: Set<string>;
}

export function validateAuthorizationPolicy(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const m = metadata(o);
  const namespace = typeof m.namespace === 'string' && m.namespace !== '' ? m.namespace : 'default';
  const s = optObject(o.spec, ['spec']) ?? {};
  knownFields(s, ['spec'], ['selector', 'targetRef', 'targetRefs', 'action', 'provider', 'rules']);
  const action = oneOf(s.action, ['spec', 'action'], ACTIONS, 'ALLOW');
  const ctx: Ctx = { namespace, action, notes: new Set() };

  const selector = workloadSelector(s.selector, ['spec', 'selector']);
  const targetRefs = policyTargets(s, ctx);
  // "only one of targetRefs or workloadSelector can be set"
  if (s.selector !== undefined && s.selector !== null && targetRefs.length > 0)
    throw new FieldProblem(['spec', 'selector'], 'only one of selector and targetRef/targetRefs can be set');

  const dryRun = dryRunAnnotation(m, action);
  if (dryRun)
    ctx.notes.add(`${DRY_RUN}: this policy is evaluated and counted (nodemesh_agent_authorization_dry_run_total) but never enforced`);

  let provider = '';
  if (s.provider !== undefined && s.provider !== null) {
    const p = object(s.provider, ['spec', 'provider']);
    knownFields(p, ['spec', 'provider'], ['name']);
    provider = optString(p.name, ['spec', 'provider', 'name']) ?? '';
    // "`provider` must not be with non CUSTOM action"
    if (action !== 'CUSTOM') throw new FieldProblem(['spec', 'provider'], `is allowed only with action CUSTOM, not ${action}`);
  }
  const rulesAbsent = s.rules === undefined || s.rules === null || (Array.isArray(s.rules) && s.rules.length === 0);
  if (action === 'CUSTOM') {
    // "CUSTOM action without `rules` is meaningless as it will never be triggered"
    if (rulesAbsent)
      throw new FieldProblem(
        ['spec', 'rules'],
        'a CUSTOM policy without rules never triggers; add an empty rule `{}` to trigger it for every request',
      );
    // "`provider.name` must not be empty"
    if (provider === '') throw new FieldProblem(['spec', 'provider', 'name'], 'is required with action CUSTOM');
    ctx.notes.add(
      `CUSTOM (external authorization by provider ${JSON.stringify(provider)}) is not supported by nodemesh: this policy is skipped`,
    );
  }
  // "DENY action without `rules` is meaningless as it will never be triggered"
  if (action === 'DENY' && rulesAbsent)
    throw new FieldProblem(['spec', 'rules'], 'a DENY policy without rules never triggers; add an empty rule `{}` to deny every request');
  if (action === 'AUDIT')
    ctx.notes.add('AUDIT never changes the decision: matches are counted in nodemesh_agent_authorization_audit_total');

  const rules = optArray(s.rules, ['spec', 'rules']).map((r, i) => rule(r, ['spec', 'rules', i], ctx));
  const spec: AuthorizationPolicySpec = { selector, targetRefs, action, dryRun, provider, rules };
  return { body: { kind: 'AuthorizationPolicy', spec }, notes: [...ctx.notes] };
}

function rule(v: unknown, at: FieldPath, ctx: Ctx): AuthorizationRule {
  // "`rule` must not be nil"
  if (v === null || v === undefined)
    throw new FieldProblem(at, 'a rule must not be empty (null); write `{}` for a rule that matches everything');
  const r = object(v, at);
  knownFields(r, at, ['from', 'to', 'when']);
  const from = clauses(r.from, [...at, 'from'], 'source', ctx, source);
  const to = clauses(r.to, [...at, 'to'], 'operation', ctx, operation);
  const when = optArray(r.when, [...at, 'when']).map((c, i) => condition(c, [...at, 'when', i], ctx));
  if (ctx.action === 'DENY') {
    // Istio's warning: a DENY rule made only of HTTP attributes matches every TCP connection
    const l4From = from.some((c) => c.matches.some((x) => !HTTP_ONLY.has(x.attribute)));
    const l4To = to.some((c) => c.matches.some((x) => x.attribute === 'destination.port'));
    if ((from.length > 0 && to.length === 0 && !l4From) || (to.length > 0 && !l4To))
      ctx.notes.add(
        'a DENY rule uses only HTTP attributes: it denies every connection to this workload that is not HTTP; scope it with `ports`',
      );
  }
  return { from, to, when };
}

function clauses(
  v: unknown,
  at: FieldPath,
  key: 'source' | 'operation',
  ctx: Ctx,
  read: (o: Obj, at: FieldPath, ctx: Ctx) => AttributeMatch[],
): MatchClause[] {
  if (v === undefined || v === null) return [];
  const list = optArray(v, at);
  // "`from` must not be empty" / "`to` must not be empty"
  if (list.length === 0) throw new FieldProblem(at, `must not be an empty list: leave it out to match any ${key}`);
  return list.map((item, i) => {
    const iat = [...at, i];
    const entry = object(item, iat);
    knownFields(entry, iat, [key]);
    // "`from.source` must not be nil"
    if (entry[key] === undefined || entry[key] === null) throw new FieldProblem([...iat, key], `is required`);
    const matches = read(object(entry[key], [...iat, key]), [...iat, key], ctx);
    // "`from.source` must not be empty"
    if (matches.length === 0) throw new FieldProblem([...iat, key], `must not be empty: set at least one field`);
    return { matches };
  });
}

// Istio Source field → attribute; all fields of one source are ANDed.
const SOURCE_FIELDS: ReadonlyArray<[string, string, AttributeMatch['attribute'], 'string' | 'ip' | 'sa']> = [
  ['principals', 'notPrincipals', 'source.principal', 'string'],
  ['requestPrincipals', 'notRequestPrincipals', 'request.auth.principal', 'string'],
  ['namespaces', 'notNamespaces', 'source.namespace', 'string'],
  ['serviceAccounts', 'notServiceAccounts', 'source.serviceAccount', 'sa'],
  ['trustDomains', 'notTrustDomains', 'source.trustDomain', 'string'],
  ['ipBlocks', 'notIpBlocks', 'source.ip', 'ip'],
  ['remoteIpBlocks', 'notRemoteIpBlocks', 'remote.ip', 'ip'],
];

function source(src: Obj, at: FieldPath, ctx: Ctx): AttributeMatch[] {
  knownFields(
    src,
    at,
    SOURCE_FIELDS.flatMap(([a, b]) => [a, b]),
  );
  const has = (f: string) => optArray(src[f], [...at, f]).length > 0;
  // "cannot set serviceAccounts with namespaces or principals"
  if ((has('serviceAccounts') || has('notServiceAccounts')) && ['principals', 'notPrincipals', 'namespaces', 'notNamespaces'].some(has))
    throw new FieldProblem(
      [...at, has('serviceAccounts') ? 'serviceAccounts' : 'notServiceAccounts'],
      'cannot be set together with principals or namespaces',
    );
  if (ctx.action === 'CUSTOM') {
    for (const f of [
      'namespaces',
      'notNamespaces',
      'serviceAccounts',
      'notServiceAccounts',
      'principals',
      'notPrincipals',
      'requestPrincipals',
      'notRequestPrincipals',
    ])
      if (has(f)) throw new FieldProblem([...at, f], 'is not supported with action CUSTOM');
  }
  const out: AttributeMatch[] = [];
  for (const [pos, neg, attribute, type] of SOURCE_FIELDS) {
    const read = (f: string) => {
      const list = values(src[f], [...at, f]);
      if (type === 'ip') return list.map((x, i) => cidr(x, [...at, f, i]));
      if (type === 'sa') return serviceAccounts(list, [...at, f], ctx.namespace);
      return list.map(stringMatch);
    };
    const m = { attribute, path: [], values: read(pos), notValues: read(neg) };
    if (m.values.length + m.notValues.length === 0) continue;
    if (attribute === 'source.principal') principalNotes(src, at, ctx);
    if (attribute === 'request.auth.principal') ctx.notes.add(JWT_NOTE);
    out.push(m);
  }
  return out;
}

function operation(op: Obj, at: FieldPath, _ctx: Ctx): AttributeMatch[] {
  knownFields(op, at, ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths']);
  const out: AttributeMatch[] = [];
  const add = (attribute: AttributeMatch['attribute'], pos: string, neg: string, read: (v: string, p: FieldPath) => ValueMatch) => {
    const one = (f: string) => values(op[f], [...at, f]).map((v, i) => read(v, [...at, f, i]));
    const m = { attribute, path: [], values: one(pos), notValues: one(neg) };
    if (m.values.length + m.notValues.length > 0) out.push(m);
  };
  add('request.host', 'hosts', 'notHosts', stringMatch);
  add('destination.port', 'ports', 'notPorts', port);
  add('request.method', 'methods', 'notMethods', stringMatch);
  add('request.path', 'paths', 'notPaths', pathMatch);
  return out;
}

const JWT_NOTE =
  'nodemesh does not validate JWTs (RequestAuthentication is not applied): no request carries a request principal or claims, so requestPrincipals and request.auth.* values never match (their not-forms always do)';

// ---------------------------------------------------------------------------------------
// `when` conditions: Istio's supported attribute keys

function condition(v: unknown, at: FieldPath, ctx: Ctx): AttributeMatch {
  const c = object(v, at);
  knownFields(c, at, ['key', 'values', 'notValues']);
  const key = string(c.key, [...at, 'key']);
  // "`key` must not be empty"
  if (key === '') throw new FieldProblem([...at, 'key'], 'must not be empty');
  const vals = values(c.values, [...at, 'values']);
  const nots = values(c.notValues, [...at, 'notValues']);
  // "at least one of `values` or `notValues` must be set for key"
  if (vals.length + nots.length === 0) throw new FieldProblem(at, `at least one of values or notValues must be set for key ${key}`);
  const { attribute, path, kind } = parseKey(key, [...at, 'key']);
  if (
    ctx.action === 'CUSTOM' &&
    (['source.namespace', 'source.serviceAccount', 'source.principal'].includes(key) || key.startsWith('request.auth.'))
  )
    throw new FieldProblem([...at, 'key'], `${key} is not supported with action CUSTOM`);
  const read = (list: string[], f: string): ValueMatch[] => {
    if (kind === 'ip') return list.map((x, i) => cidr(x, [...at, f, i]));
    if (kind === 'port') return list.map((x, i) => port(x, [...at, f, i]));
    if (kind === 'sa') return serviceAccounts(list, [...at, f], ctx.namespace);
    return list.map(stringMatch);
  };
  if (attribute.startsWith('request.auth.')) ctx.notes.add(JWT_NOTE);
  if (attribute === 'connection.sni' || attribute === 'experimental.envoy.filters')
    ctx.notes.add(`when ${key}: never known to the node proxy, so its values never match (notValues always do)`);
  return { attribute, path, values: read(vals, 'values'), notValues: read(nots, 'notValues') };
}

type ValueKind = 'string' | 'ip' | 'port' | 'sa';

const PLAIN_KEYS: ReadonlyMap<string, [AttributeMatch['attribute'], ValueKind]> = new Map([
  ['source.ip', ['source.ip', 'ip']],
  ['remote.ip', ['remote.ip', 'ip']],
  ['source.namespace', ['source.namespace', 'string']],
  ['source.serviceAccount', ['source.serviceAccount', 'sa']],
  ['source.principal', ['source.principal', 'string']],
  ['source.trustDomain', ['source.trustDomain', 'string']],
  ['request.auth.principal', ['request.auth.principal', 'string']],
  ['request.auth.audiences', ['request.auth.audiences', 'string']],
  ['request.auth.presenter', ['request.auth.presenter', 'string']],
  ['destination.ip', ['destination.ip', 'ip']],
  ['destination.port', ['destination.port', 'port']],
  ['connection.sni', ['connection.sni', 'string']],
]);

const MAP_KEYS: ReadonlyArray<[string, AttributeMatch['attribute']]> = [
  ['request.headers', 'request.headers'],
  ['request.experimental.inline.headers', 'request.headers'],
  ['request.auth.claims', 'request.auth.claims'],
];

function parseKey(key: string, at: FieldPath): { attribute: AttributeMatch['attribute']; path: string[]; kind: ValueKind } {
  const plain = PLAIN_KEYS.get(key);
  if (plain) return { attribute: plain[0], path: [], kind: plain[1] };
  for (const [prefix, attribute] of MAP_KEYS) {
    if (!key.startsWith(prefix)) continue;
    const names = bracketed(key.slice(prefix.length), key, at);
    if (attribute === 'request.headers') {
      if (names.length !== 1) throw new FieldProblem(at, `bad key ${JSON.stringify(key)}: expected ${prefix}[header-name]`);
      return { attribute, path: [names[0]!.toLowerCase()], kind: 'string' };
    }
    return { attribute, path: names, kind: 'string' };
  }
  if (key.startsWith('experimental.envoy.filters.')) {
    const open = key.indexOf('[');
    bracketed(key.slice(open), key, at);
    return {
      attribute: 'experimental.envoy.filters',
      path: [key.slice('experimental.'.length, open), key.slice(open + 1, -1)],
      kind: 'string',
    };
  }
  if (key === 'destination.namespace') throw new FieldProblem(at, `${key} is replaced by the policy's metadata.namespace`);
  if (key.startsWith('destination.labels')) throw new FieldProblem(at, `${key} is replaced by the workload selector (spec.selector)`);
  if (key === 'destination.name' || key === 'destination.user')
    throw new FieldProblem(at, `${key} is a deprecated attribute (only supported in v1alpha1)`);
  throw new FieldProblem(
    at,
    `unknown attribute ${JSON.stringify(key)}; supported: request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, source.serviceAccount, source.trustDomain, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[NAME], destination.ip, destination.port, connection.sni, experimental.envoy.filters.*[KEY]`,
  );
}

/** `[a]` → ['a'], `[a][b]` → ['a', 'b'] (Istio: "should have format a[b]"). */
function bracketed(rest: string, key: string, at: FieldPath): string[] {
  if (!/^(\[[^\[\]]+\])+$/.test(rest)) throw new FieldProblem(at, `bad key ${JSON.stringify(key)}: should have the format a[b]`);
  return rest.slice(1, -1).split('][');
}

// ---------------------------------------------------------------------------------------
// values

/** A list of strings, none empty ("empty value not allowed"). */
function values(v: unknown, at: FieldPath): string[] {
  return stringList(v, at, (item, path) => {
    if (item === '') throw new FieldProblem(path, 'empty value not allowed');
  });
}

/** "Exact match: abc; prefix match: abc*; suffix match: *abc; presence match: *". */
function stringMatch(v: string): ValueMatch {
  if (v === '*') return { kind: 'presence', value: '' };
  if (v.startsWith('*')) return { kind: 'suffix', value: v.slice(1) };
  if (v.endsWith('*')) return { kind: 'prefix', value: v.slice(0, -1) };
  return { kind: 'exact', value: v };
}

/** ValidatePorts: a decimal number 0-65535. */
function port(v: string, at: FieldPath): ValueMatch {
  if (!/^[0-9]+$/.test(v) || Number(v) > 65535)
    throw new FieldProblem(at, `bad port ${JSON.stringify(v)}: expected a number 0-65535 (as a string)`);
  return { kind: 'exact', value: String(Number(v)) };
}

/** ValidateIPs: a single address, or a CIDR range; normalised to `network/len`. */
function cidr(v: string, at: FieldPath): ValueMatch {
  const slash = v.indexOf('/');
  const addr = slash < 0 ? v : v.slice(0, slash);
  const family = isIP(addr);
  if (family === 0)
    throw new FieldProblem(
      at,
      `bad ${slash < 0 ? 'IP address' : 'CIDR range'} ${JSON.stringify(v)}: expected e.g. 10.1.2.3 or 10.1.0.0/16`,
    );
  const max = family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const bits = v.slice(slash + 1);
    if (!/^(0|[1-9][0-9]*)$/.test(bits) || Number(bits) > max)
      throw new FieldProblem(at, `bad CIDR range ${JSON.stringify(v)}: the prefix length must be 0-${max}`);
    len = Number(bits);
  }
  return { kind: 'cidr', value: `${family === 4 ? maskIpv4(addr, len) : addr.toLowerCase()}/${len}` };
}


/** CheckServiceAccount: `sa` or `ns/sa`, no wildcard, ≤ 16 values; `sa` alone is in the policy's namespace. */
function serviceAccounts(list: string[], at: FieldPath, namespace: string): ValueMatch[] {
  maxItems(list, at, 16, 'values');
  return list.map((v, i) => {
    if (v.includes('*')) throw new FieldProblem([...at, i], `wildcard not allowed in ${JSON.stringify(v)}`);
    if (v.length > 320) throw new FieldProblem([...at, i], 'a value cannot exceed 320 characters');
    const parts = v.split('/');
    if (parts.length > 2 || parts.some((p) => p === ''))
      throw new FieldProblem([...at, i], `expected 'serviceAccount' or 'namespace/serviceAccount', found ${JSON.stringify(v)}`);
    return { kind: 'exact', value: parts.length === 2 ? v : `${namespace}/${v}` };
  });
}

const MATCH_ONE = '{*}';
const MATCH_ANY = '{**}';
// RFC 3986 pchar, as Envoy's URI templates require of literal segments
const VALID_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

/** A path; with `{*}` / `{**}` it is an Envoy URI template (CheckValidPathTemplate). */
function pathMatch(v: string, at: FieldPath): ValueMatch {
  if (!v.includes(MATCH_ONE) && !v.includes(MATCH_ANY)) return stringMatch(v);
  let seenAny = false;
  for (const glob of v.replace(/^\/+|\/+$/g, '').split('/')) {
    if (glob === MATCH_ONE || glob === MATCH_ANY) {
      if (seenAny) throw new FieldProblem(at, `invalid path template ${JSON.stringify(v)}: {**} must be the last operator`);
      if (glob === MATCH_ANY) seenAny = true;
      continue;
    }
    if (/[{}]/.test(glob))
      throw new FieldProblem(at, `invalid path template ${JSON.stringify(v)}: '{' or '}' beyond a supported operator ({*} or {**})`);
    if (!VALID_LITERAL.test(glob))
      throw new FieldProblem(at, `invalid path template ${JSON.stringify(v)}: segment ${JSON.stringify(glob)} is not a valid literal`);
  }
  return { kind: 'template', value: v };
}

// ---------------------------------------------------------------------------------------
// shared pieces

const HTTP_ONLY: ReadonlySet<string> = new Set(['request.auth.principal', 'request.host', 'request.method', 'request.path']);

function principalNotes(src: Obj, at: FieldPath, ctx: Ctx): void {
  for (const f of ['principals', 'notPrincipals']) {
    for (const p of optArray(src[f], [...at, f])) {
      if (typeof p === 'string' && p.startsWith('spiffe://'))
        ctx.notes.add(
          `${f} ${JSON.stringify(p)}: principals are written without "spiffe://" (e.g. cluster.local/ns/default/sa/sleep), so this value never matches`,
        );
    }
  }
}

/** matchLabels: no empty key, no wildcard; undefined when absent or empty. */
function workloadSelector(v: unknown, at: FieldPath): Record<string, string> | undefined {
  const labels = workloadSelectorLabels(v, at);
  if (!labels) return undefined;
  for (const [k, val] of Object.entries(labels)) {
    if (k === '') throw new FieldProblem([...at, 'matchLabels'], 'an empty key is not supported in a selector');
    if (k.includes('*') || val.includes('*'))
      throw new FieldProblem([...at, 'matchLabels', k], `wildcard is not supported in a selector: ${k}=${val}`);
  }
  return Object.keys(labels).length > 0 ? labels : undefined;
}

// "don't validate version, just group and kind"
const TARGET_KINDS: ReadonlyArray<[string, string]> = [
  ['', 'Service'],
  ['networking.istio.io', 'ServiceEntry'],
  ['gateway.networking.k8s.io', 'Gateway'],
  ['gateway.networking.k8s.io', 'GatewayClass'],
];

function policyTargets(s: Obj, ctx: Ctx): PolicyTargetRef[] {
  const refs: [unknown, FieldPath][] = [];
  if (s.targetRef !== undefined && s.targetRef !== null) refs.push([s.targetRef, ['spec', 'targetRef']]);
  optArray(s.targetRefs, ['spec', 'targetRefs']).forEach((r, i) => refs.push([r, ['spec', 'targetRefs', i]]));
  if (refs.length > 1 && s.targetRef !== undefined && s.targetRef !== null)
    throw new FieldProblem(['spec', 'targetRef'], 'only one of targetRef and targetRefs can be set');
  return refs.map(([v, at]) => {
    const r = object(v, at);
    knownFields(r, at, ['group', 'kind', 'name', 'namespace', 'sectionName']);
    const group = optString(r.group, [...at, 'group']) ?? '';
    const kind = string(r.kind, [...at, 'kind']);
    const name = optString(r.name, [...at, 'name']) ?? '';
    // "targetRef name must be set"
    if (name === '') throw new FieldProblem([...at, 'name'], 'is required');
    // "cross namespace referencing is not supported"
    if (optString(r.namespace, [...at, 'namespace']))
      throw new FieldProblem([...at, 'namespace'], 'must not be set: cross-namespace references are not supported');
    if (!TARGET_KINDS.some(([g, k]) => g === group && k === kind))
      throw new FieldProblem(
        [...at, 'kind'],
        `targetRef must be to one of ${TARGET_KINDS.map(([g, k]) => `${g || 'core'}/${k}`).join(', ')}, found ${group || 'core'}/${kind}`,
      );
    if (kind === 'Service')
      ctx.notes.add(
        `targetRef Service ${name}: enforced by the node proxy of every pod behind the Service, for all traffic to those pods (there are no waypoints)`,
      );
    else ctx.notes.add(`targetRef ${kind} ${name}: gateways are not part of nodemesh, so this reference applies to no workload`);
    return { group, kind, name };
  });
}

function dryRunAnnotation(m: Obj, action: AuthorizationAction): boolean {
  const at = ['metadata', 'annotations', DRY_RUN];
  const value = stringMap(m.annotations, ['metadata', 'annotations'])[DRY_RUN];
  if (value === undefined) return false;
  if (action !== 'ALLOW' && action !== 'DENY') throw new FieldProblem(at, `is supported only with action ALLOW or DENY, found ${action}`);
  // Go's strconv.ParseBool
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new FieldProblem(at, `expected "true" or "false", found ${JSON.stringify(value)}`);
}

