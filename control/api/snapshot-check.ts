// A snapshot checked when it arrives, before the agent applies it: the decoded message is
// turned into the typed Snapshot, or refused with the field that is wrong. Run once per
// snapshot received (never per request); a snapshot of a few thousand workloads takes a few
// milliseconds, and nothing is allocated for the error path while the snapshot is fine.
//
// What is checked: what the types promise (structure; the known words of the few-word
// fields; sub-messages present) and the values the agent uses as they come: addresses
// (workload, endpoint and node IPs, CIDRs in policies), ports, HTTP statuses, percentages,
// the names it looks things up by (workload uid, Service host, subset and policy names), and
// the version (a safe integer). What the control plane alone can judge (a regex, a route
// that can never match) is its validators' business.
//
// Lenient where a proto3 default is legitimate: empty lists and maps, empty strings but for
// the names above, and an absent (null) sub-message whose absence has one meaning, filled in
// here so the agent sees one shape: no routing or security config, no header operations, no
// retry policy (a zero RetryPolicy: no retries, what the agent does with none), and the
// parts of a TrafficPolicy that older control planes did not send (the mesh defaults, as
// the agent filled them in). Other absent sub-messages would have to be guessed: refused.
//
// The field tables below are typed against the snapshot's types, so a field added to a
// proto (and regenerated) does not compile until it is given a check here.
import { isIP } from 'node:net';
import { NodemeshError } from '../../common/errors.js';
import { DELTA_SECTIONS, type DeltaSection, type SnapshotDelta } from './snapshot-delta.js';
import type { Endpoint, GatewayInfo, NamespaceInfo, NodeInfo, Service, ServicePort, Snapshot, Workload } from './snapshot.js';
import { CUSTOM_TAG_KINDS, ISTIO_METRICS, TELEMETRY_MODES, type TelemetryPolicy } from './snapshot-telemetry.js';
import type { AccessLogging__Output } from './generated/nodemesh/v1/AccessLogging.js';
import type { Tracing__Output } from './generated/nodemesh/v1/Tracing.js';
import type { CustomTag__Output } from './generated/nodemesh/v1/CustomTag.js';
import type { MetricsOverride__Output } from './generated/nodemesh/v1/MetricsOverride.js';
import {
  CONSISTENT_HASH_KINDS,
  LOAD_BALANCER_POLICIES,
  NO_MATCH_ACTIONS,
  STRING_MATCH_KINDS,
  defaultTrafficPolicy,
  emptyHeaderOps,
  emptyRouting,
  type ConnectionPool,
  type ConsistentHash,
  type Destination,
  type DestinationPolicy,
  type Fault,
  type HeaderOps,
  type HttpMatch,
  type HttpRoute,
  type LoadBalancer,
  type LocalityLb,
  type Mirror,
  type NamedMatch,
  type OutlierDetection,
  type PortPolicy,
  type Redirect,
  type RetryBudget,
  type RetryPolicy,
  type Rewrite,
  type RouteTable,
  type RoutingConfig,
  type StringMatch,
  type Subset,
  type TcpRoute,
  type TrafficPolicy,
} from './snapshot-routing.js';
import {
  ATTRIBUTES,
  AUTHORIZATION_ACTIONS,
  MATCH_KINDS,
  MTLS_MODES,
  emptySecurity,
  type AttributeMatch,
  type AuthorizationPolicy,
  type AuthorizationRule,
  type MatchClause,
  type PortMtls,
  type SecurityConfig,
  type ValueMatch,
  type WorkloadSecurity,
} from './snapshot-security.js';

/** A snapshot the agent refuses: `field` is the path into it, e.g. `workloads[3].ip`. */
export class InvalidSnapshotError extends NodemeshError {
  readonly field: string;
  readonly problem: string;
  constructor(field: string, problem: string) {
    super('NM_ERR_CONTROL', `snapshot field ${field}: ${problem}`);
    this.name = 'InvalidSnapshotError';
    this.field = field;
    this.problem = problem;
  }
}

/**
 * Checks a decoded Discovery/Watch message (proto-loader, PROTO_LOADER_OPTIONS) and returns
 * it as a Snapshot, or throws InvalidSnapshotError. The message is the caller's own: it is
 * checked and completed in place (no copy of a few thousand workloads), `version` becoming
 * a number.
 */
export function checkSnapshot(msg: unknown): Snapshot {
  try {
    // the tables establish what Snapshot adds to the decoded shape (see snapshot.ts)
    const s = snapshot(msg) as unknown as Snapshot & Partial<Record<(typeof DELTA_FIELDS)[number], unknown>>;
    // a whole snapshot decoded with defaults carries the delta fields empty: not the Snapshot's
    for (const f of DELTA_FIELDS) delete s[f];
    return s;
  } catch (err) {
    if (err instanceof Defect) throw new InvalidSnapshotError(err.field(), err.problem);
    throw err;
  }
}

const DELTA_FIELDS = ['baseVersion', 'removedWorkloads', 'removedServices', 'sections'] as const;

/** Whether a decoded Watch message is a delta (base_version set), to be checked with checkSnapshotDelta. */
export function isDeltaMessage(msg: unknown): boolean {
  const b = (msg as { baseVersion?: unknown } | null)?.baseVersion;
  return b !== undefined && b !== null && b !== '0' && b !== 0;
}

/**
 * Checks a decoded delta (snapshot-delta.ts) as checkSnapshot checks a whole snapshot: its
 * workloads and services entry by entry, the sections it names as the whole snapshot's, the
 * removed keys as names; a section name it does not know is refused. The message is the
 * caller's own, completed in place.
 */
export function checkSnapshotDelta(msg: unknown): SnapshotDelta {
  try {
    const m = msg as Obj;
    if (m === null || typeof m !== 'object') throw new Defect(`expected a message, found ${describe(m)}`);
    const sectionNames = check(m, 'sections', list(oneOf(DELTA_SECTIONS))) as DeltaSection[];
    const s = snapshot(msg) as unknown as Snapshot;
    const sections: Partial<Record<DeltaSection, unknown>> = {};
    for (const name of sectionNames) sections[name] = s[name];
    return {
      version: s.version,
      generatedAt: s.generatedAt,
      baseVersion: check(m, 'baseVersion', version) as number,
      workloads: s.workloads,
      services: s.services,
      removedWorkloads: check(m, 'removedWorkloads', list(name)) as string[],
      removedServices: check(m, 'removedServices', list(name)) as string[],
      sections: sections as SnapshotDelta['sections'],
    };
  } catch (err) {
    if (err instanceof Defect) throw new InvalidSnapshotError(err.field(), err.problem);
    throw err;
  }
}

function check(o: Obj, key: string, c: Check): unknown {
  try {
    return c(o[key]);
  } catch (err) {
    throw within(err, key);
  }
}

// ---- the walk ----------------------------------------------------------------------------

/** A problem found somewhere below; the path is put together on the way out. */
class Defect {
  private readonly path: (string | number)[] = [];
  constructor(readonly problem: string) {}
  within(segment: string | number): this {
    this.path.unshift(segment);
    return this;
  }
  field(): string {
    let s = '';
    for (const p of this.path) s += typeof p === 'number' ? `[${p}]` : p.startsWith('[') ? p : s ? `.${p}` : p;
    return s || '(the message)';
  }
}

function within(err: unknown, segment: string | number): unknown {
  return err instanceof Defect ? err.within(segment) : err;
}

/** Checks one value; returns it, or what it stands for (an absent message filled in). */
type Check = (v: unknown) => unknown;
/** A check for every field of T: a field added to the proto must be given one. */
type Fields<T> = { readonly [K in keyof T]-?: Check };
type Obj = Record<string, unknown>;

function describe(v: unknown): string {
  if (typeof v === 'string') return v.length > 60 ? `${JSON.stringify(v.slice(0, 60))}…` : JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (v === null || typeof v !== 'object') return String(v);
  return 'a message';
}

/** A message: present (not null), every field checked. `rule` checks across its fields. */
function message<T>(fields: Fields<T>, rule?: (o: Obj) => void): Check {
  const entries = Object.entries(fields) as [string, Check][];
  return (v) => {
    if (v === null || v === undefined) throw new Defect('is missing: the snapshot must carry it');
    if (typeof v !== 'object' || Array.isArray(v)) throw new Defect(`expected a message, found ${describe(v)}`);
    const o = v as Obj;
    for (const [key, check] of entries) {
      try {
        const x = o[key];
        const y = check(x);
        if (y !== x) o[key] = y;
      } catch (err) {
        throw within(err, key);
      }
    }
    rule?.(o);
    return o;
  };
}

/** A non-optional message whose absence (null) has one meaning: `fill()`. */
function orElse(check: Check, fill: () => unknown): Check {
  return (v) => (v === null || v === undefined ? fill() : check(v));
}

/** An `optional` message: absent (never null: proto3 `optional` decodes unset as absent), or checked. */
function optional(check: Check): Check {
  return (v) => {
    if (v === null) throw new Defect('is null: expected a message, or nothing');
    return v === undefined ? v : check(v);
  };
}

function list(check: Check): Check {
  return (v) => {
    if (!Array.isArray(v)) throw new Defect(`expected a list, found ${describe(v)}`);
    for (let i = 0; i < v.length; i++) {
      try {
        const x: unknown = v[i];
        const y = check(x);
        if (y !== x) v[i] = y;
      } catch (err) {
        throw within(err, i);
      }
    }
    return v;
  };
}

const stringMap: Check = (v) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Defect(`expected a map, found ${describe(v)}`);
  for (const k in v as Obj) {
    const x = (v as Obj)[k];
    if (typeof x !== 'string') throw new Defect(`expected a string, found ${describe(x)}`).within(`[${JSON.stringify(k)}]`);
  }
  return v;
};

/** A proto3 `optional string`: absent, or a string. */
const optionalString: Check = (v) => (v === undefined ? v : str(v));

/** locality pattern -> weight */
const weightMap: Check = (v) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Defect(`expected a map, found ${describe(v)}`);
  for (const k in v as Obj) {
    try {
      uint32((v as Obj)[k]);
    } catch (err) {
      throw within(err, `[${JSON.stringify(k)}]`);
    }
  }
  return v;
};

const str: Check = (v) => {
  if (typeof v !== 'string') throw new Defect(`expected a string, found ${describe(v)}`);
  return v;
};

/** A name the agent looks something up by. */
const name: Check = (v) => {
  if (str(v) === '') throw new Defect('is empty: the agent looks things up by it');
  return v;
};

const pem: Check = (v) => {
  if (str(v) === '') throw new Defect('is empty: expected a PEM root certificate');
  return v;
};

const bool: Check = (v) => {
  if (typeof v !== 'boolean') throw new Defect(`expected true or false, found ${describe(v)}`);
  return v;
};

function integer(min: number, max: number, what: string): Check {
  return (v) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new Defect(`${describe(v)} is not ${what}`);
    return v;
  };
}

function number(min: number, max: number, what: string): Check {
  return (v) => {
    if (typeof v !== 'number' || !(v >= min && v <= max)) throw new Defect(`${describe(v)} is not ${what}`);
    return v;
  };
}

const uint32 = integer(0, 0xffff_ffff, 'a uint32');
const port = integer(1, 65535, 'a port (1-65535)');
const portOrAny = integer(0, 65535, 'a port (1-65535, or 0: any)');
const httpStatus = integer(100, 599, 'an HTTP status (100-599)');
const statusOrZero: Check = (v) => (v === 0 ? v : integer(100, 599, 'an HTTP status (100-599, or 0: none)')(v));
const percent = number(0, 100, 'a percentage (0-100)');
const nonNegative = number(0, Number.MAX_VALUE, 'a finite number of 0 or more');

/** A latency-ejection factor: at or below 1, about half the endpoints would be ejected at every interval. */
const aboveOne: Check = (v) => {
  if (typeof v !== 'number' || !(v > 1 && v <= Number.MAX_VALUE)) throw new Defect(`${describe(v)} is not a factor above 1`);
  return v;
};

function oneOf(words: readonly string[]): Check {
  const known = new Set(words);
  return (v) => {
    if (typeof v !== 'string' || !known.has(v)) throw new Defect(`${describe(v)} is not one of ${words.join(', ')}`);
    return v;
  };
}

const ip: Check = (v) => {
  if (typeof v !== 'string' || isIP(v) === 0) throw new Defect(`${describe(v)} is not an IP address`);
  return v;
};

const ipOrEmpty: Check = (v) => (v === '' ? v : ip(v));

/** uint64, a decimal string as decoded (longs: String); a number held exactly by a double. */
const version: Check = (v) => {
  const n = typeof v === 'string' && /^\d{1,20}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
    throw new Defect(`${describe(v)} is not a version (an integer from 0 to 2^53-1)`);
  return n;
};

function cidr(v: string): boolean {
  const slash = v.lastIndexOf('/');
  const family = isIP(slash < 0 ? v : v.slice(0, slash));
  if (family === 0) return false;
  if (slash < 0) return true;
  const len = v.slice(slash + 1);
  return /^\d{1,3}$/.test(len) && Number(len) <= (family === 4 ? 32 : 128);
}

// ---- the snapshot, field by field --------------------------------------------------------

const endpoint = message<Endpoint>({ ip, port, workload: str, node: str, locality: optionalString });

const servicePort = message<ServicePort>({
  name: str,
  port,
  targetPort: portOrAny,
  protocol: str,
  appProtocol: str,
  endpoints: list(endpoint),
});

const service = message<Service>({ name, namespace: name, hostname: name, clusterIp: ipOrEmpty, ports: list(servicePort), exportTo: optionalString });

const workload = message<Workload>({
  uid: name,
  name,
  namespace: name,
  node: str,
  ip,
  serviceAccount: str,
  labels: stringMap,
  meshed: bool,
  spiffeId: name,
  failOpen: bool,
  workloadName: str,
  cluster: optionalString,
  network: optionalString,
});

const node = message<NodeInfo>({ name, ip: ipOrEmpty, locality: optionalString, network: optionalString });

const gateway = message<GatewayInfo>({ network: str, address: ip, port, spiffeId: name, cluster: str });

const namespaceInfo = message<NamespaceInfo>({ name, meshed: bool, pendingExceptions: list(name) });

// routing

const stringMatch = message<StringMatch>({ kind: oneOf(STRING_MATCH_KINDS), value: str, ignoreCase: bool });
const namedMatch = message<NamedMatch>({ name, match: stringMatch });

const httpMatch = message<HttpMatch>({
  uri: optional(stringMatch),
  method: optional(stringMatch),
  authority: optional(stringMatch),
  scheme: optional(stringMatch),
  headers: list(namedMatch),
  withoutHeaders: list(namedMatch),
  queryParams: list(namedMatch),
  port: portOrAny,
  sourceLabels: stringMap,
  sourceNamespace: str,
});

const headerOps = orElse(message<HeaderOps>({ set: stringMap, add: stringMap, remove: list(str) }), emptyHeaderOps);
const headerRules = orElse(message<Destination['headers']>({ request: headerOps, response: headerOps }), () => ({
  request: emptyHeaderOps(),
  response: emptyHeaderOps(),
}));

const destination = message<Destination>({
  host: name,
  subset: str,
  port: portOrAny,
  weight: uint32,
  headers: headerRules,
  failStatus: statusOrZero,
});

const noRetries = (): RetryPolicy => ({
  attempts: 0,
  perTryTimeoutMs: 0,
  retryOn: [],
  retriableStatusCodes: [],
  backoffBaseMs: 0,
  backoffMaxMs: 0,
});
const retryPolicy = message<RetryPolicy>({
  attempts: uint32,
  perTryTimeoutMs: uint32,
  retryOn: list(str),
  retriableStatusCodes: list(httpStatus),
  backoffBaseMs: uint32,
  backoffMaxMs: uint32,
});

const fault = message<Fault>({
  delay: optional(message<NonNullable<Fault['delay']>>({ fixedDelayMs: uint32, percentage: percent })),
  abort: optional(message<NonNullable<Fault['abort']>>({ httpStatus: statusOrZero, grpcStatus: str, percentage: percent })),
});

const redirect = message<Redirect>({ uri: str, replacePrefixMatch: str, authority: str, scheme: str, port: portOrAny, status: httpStatus });

const rewrite = message<Rewrite>({
  uri: str,
  replacePrefixMatch: str,
  replaceFullPath: str,
  uriRegex: optional(message<NonNullable<Rewrite['uriRegex']>>({ match: str, rewrite: str })),
  authority: str,
});

const mirror = message<Mirror>({ destination, percentage: percent });

const httpRoute = message<HttpRoute>({
  name: str,
  match: list(httpMatch),
  destinations: list(destination),
  redirect: optional(redirect),
  directResponse: optional(message<NonNullable<HttpRoute['directResponse']>>({ status: httpStatus, body: str })),
  rewrite: optional(rewrite),
  timeoutMs: uint32,
  retries: orElse(retryPolicy, noRetries),
  fault: optional(fault),
  headers: headerRules,
  mirrors: list(mirror),
});

const tcpRoute = message<TcpRoute>({ port: portOrAny, destinations: list(destination) });

const routeTable = message<RouteTable>({
  host: name,
  consumerNamespace: str,
  http: list(httpRoute),
  tcp: list(tcpRoute),
  source: str,
  noMatch: oneOf(NO_MATCH_ACTIONS),
});

const consistentHash = message<ConsistentHash>({
  kind: oneOf(CONSISTENT_HASH_KINDS),
  name: str,
  cookiePath: str,
  cookieTtlMs: nonNegative,
});

const locality = message<LocalityLb>({
  enabled: bool,
  distribute: list(message<LocalityLb['distribute'][number]>({ from: name, to: weightMap })),
  failover: list(message<LocalityLb['failover'][number]>({ from: name, to: name })),
  failoverPriority: list(name),
});

const loadBalancer = message<LoadBalancer>({
  simple: oneOf(LOAD_BALANCER_POLICIES),
  consistentHash: optional(consistentHash),
  locality: optional(locality),
});

const connectionPool = message<ConnectionPool>({
  maxConnections: uint32,
  connectTimeoutMs: uint32,
  tcpIdleTimeoutMs: uint32,
  maxConnectionDurationMs: uint32,
  http1MaxPendingRequests: uint32,
  http2MaxRequests: uint32,
  maxRequestsPerConnection: uint32,
  maxRetries: uint32,
  httpIdleTimeoutMs: uint32,
});

const outlierDetection = message<OutlierDetection>({
  enabled: bool,
  consecutive5xxErrors: uint32,
  consecutiveGatewayErrors: uint32,
  consecutiveLocalOriginFailures: uint32,
  splitExternalLocalOriginErrors: bool,
  intervalMs: uint32,
  baseEjectionTimeMs: uint32,
  maxEjectionTimeMs: uint32,
  maxEjectionPercent: percent,
  minHealthPercent: percent,
  latencyEjection: optional(
    message<NonNullable<OutlierDetection['latencyEjection']>>({
      factor: aboveOne,
      minRequests: uint32,
    }),
  ),
});

const retryBudget = message<RetryBudget>({ percent, minRetriesPerSecond: uint32, ttlMs: uint32, minRetryConcurrency: uint32 });

const meshDefault = defaultTrafficPolicy();
const trafficPolicy = message<TrafficPolicy>({
  loadBalancer: orElse(loadBalancer, () => ({ ...meshDefault.loadBalancer })),
  connectionPool: orElse(connectionPool, () => ({ ...meshDefault.connectionPool })),
  outlierDetection: orElse(outlierDetection, () => ({ ...meshDefault.outlierDetection })),
  retryBudget: orElse(retryBudget, () => ({ ...meshDefault.retryBudget })),
});

const portPolicy = message<PortPolicy>({ port, policy: trafficPolicy });

const subset = message<Subset>({ name, labels: stringMap, policy: trafficPolicy, ports: list(portPolicy) });

const destinationPolicy = message<DestinationPolicy>({
  host: name,
  policy: trafficPolicy,
  ports: list(portPolicy),
  subsets: list(subset),
  source: str,
  consumerNamespace: optionalString,
});

const routing = message<RoutingConfig>({ routes: list(routeTable), destinations: list(destinationPolicy) });

// security

const valueMatch = message<ValueMatch>({ kind: oneOf(MATCH_KINDS), value: str }, (o) => {
  // the agent would skip a CIDR it cannot read: a DENY that silently denies nothing
  if (o.kind === 'cidr' && !cidr(o.value as string))
    throw new Defect(`${describe(o.value)} is not an IP address or CIDR range`).within('value');
});

const attributeMatch = message<AttributeMatch>({
  attribute: oneOf(ATTRIBUTES),
  path: list(str),
  values: list(valueMatch),
  notValues: list(valueMatch),
});

const matchClause = message<MatchClause>({ matches: list(attributeMatch) });

const authorizationRule = message<AuthorizationRule>({ from: list(matchClause), to: list(matchClause), when: list(attributeMatch) });

const authorizationPolicy = message<AuthorizationPolicy>({
  namespace: name,
  name,
  action: oneOf(AUTHORIZATION_ACTIONS),
  dryRun: bool,
  provider: str,
  rules: list(authorizationRule),
});

const workloadSecurity = message<WorkloadSecurity>({
  workload: name,
  mtlsMode: oneOf(MTLS_MODES),
  portMtls: list(message<PortMtls>({ port, mode: oneOf(MTLS_MODES) })),
  peerAuthentications: list(str),
  authorizationPolicies: list(str),
  http: bool,
});

const security = message<SecurityConfig>({ workloads: list(workloadSecurity), authorizationPolicies: list(authorizationPolicy) });

const telemetryPolicy = message<TelemetryPolicy>({
  namespace: name,
  name,
  selector: stringMap,
  accessLogging: list(message<AccessLogging__Output>({ disabled: bool, filter: str, providers: list(str), mode: oneOf(TELEMETRY_MODES) })),
  tracing: list(
    message<Tracing__Output>({
      disabled: bool,
      randomSamplingPercentage: number(-1, 100, 'a sampling percentage (0-100, -1: unset)'),
      providers: list(str),
      mode: oneOf(TELEMETRY_MODES),
      customTags: list(message<CustomTag__Output>({ name: str, kind: oneOf(CUSTOM_TAG_KINDS), value: str, defaultValue: str })),
    }),
  ),
  metricsOverrides: list(message<MetricsOverride__Output>({ metric: oneOf(ISTIO_METRICS), mode: oneOf(TELEMETRY_MODES), disabled: optional(bool), removeTags: list(str) })),
});

const snapshot = message<Snapshot>({
  version,
  generatedAt: str,
  workloads: list(workload),
  services: list(service),
  routing: orElse(routing, emptyRouting),
  security: orElse(security, emptySecurity),
  trustBundle: list(pem),
  nodes: list(node),
  telemetry: orElse(list(telemetryPolicy), () => []),
  // absent from a last good state an older agent wrote
  namespaces: orElse(list(namespaceInfo), () => []),
  // absent from a last good state written before multi-cluster
  gateways: orElse(list(gateway), () => []),
  trustDomains: orElse(list(name), () => []),
});
