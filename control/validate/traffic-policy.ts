// DestinationRule traffic policies: `trafficPolicy` (the rule's, a subset's, a port's) read
// into complete groups (load balancer, connection pool, outlier detection, retry budget), as
// Istio validates them. How groups from several levels merge is the compiler's
// (compile/routing-destinations.ts).
import {
  UNLIMITED,
  defaultTrafficPolicy,
  type ConnectionPool,
  type ConsistentHash,
  type LoadBalancer,
  type OutlierDetection,
  type RetryBudget,
} from '../api/snapshot-routing.js';
import type { PolicyGroups, PortGroups } from '../model/routing.js';
import { formatFieldPath as fmt, type FieldPath } from '../model/source-document.js';
import { istioDuration } from './durations.js';
import { localityLbSetting } from './locality-lb.js';
import {
  FieldProblem,
  describeValue,
  integer,
  isObj,
  knownFields,
  nonEmptyString,
  object,
  oneOf,
  optArray,
  optBoolean,
  optCount,
  optInteger,
  optObject,
  optString,
  optWrappedCount,
  percent,
  type Obj,
} from './fields.js';

/** The annotation that selects the latency-aware balancer, which Istio's API has no value for. */
export const LOAD_BALANCER_ANNOTATION = 'nodemesh.io/load-balancer';

const SIMPLE = ['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'] as const;

export interface ParsedPolicy {
  groups: PolicyGroups;
  ports: PortGroups[];
}

/** `trafficPolicy` (top level or a subset's); undefined when absent. Notes collect what is accepted but not applied. */
export function trafficPolicy(v: unknown, path: FieldPath, notes: string[]): ParsedPolicy | undefined {
  const o = optObject(v, path);
  if (!o) return undefined;
  knownFields(o, path, ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', 'portLevelSettings', 'tunnel', 'proxyProtocol', 'retryBudget']);
  if (Object.keys(o).length === 0) throw new FieldProblem(path, 'traffic policy must have at least one field');
  if (o.tunnel !== undefined && o.proxyProtocol !== undefined) throw new FieldProblem(path, 'tunnel and proxyProtocol must not be set together');
  const groups = policyGroups(o, path, notes);
  if (o.tunnel !== undefined) notes.push(`${fmt(path)}.tunnel is not applied: nodemesh does not tunnel to external proxies`);
  if (o.proxyProtocol !== undefined) notes.push(`${fmt(path)}.proxyProtocol is not applied`);
  const ports: PortGroups[] = [];
  const seen = new Set<number>();
  optArray(o.portLevelSettings, [...path, 'portLevelSettings']).forEach((p, i) => {
    const at = [...path, 'portLevelSettings', i];
    const po = object(p, at);
    knownFields(po, at, ['port', 'loadBalancer', 'connectionPool', 'outlierDetection', 'tls']);
    const sel = optObject(po.port, [...at, 'port']);
    if (!sel) throw new FieldProblem([...at, 'port'], 'portTrafficPolicy must have valid port: expected `port: {number: N}`');
    knownFields(sel, [...at, 'port'], ['number']);
    const port = integer(sel.number, [...at, 'port', 'number'], 1, 65535);
    if (seen.has(port)) throw new FieldProblem([...at, 'port', 'number'], `port ${port} already has portLevelSettings`);
    seen.add(port);
    if (po.loadBalancer === undefined && po.connectionPool === undefined && po.outlierDetection === undefined && po.tls === undefined)
      throw new FieldProblem(at, 'port traffic policy must have at least one field');
    ports.push({ port, groups: policyGroups(po, at, notes) });
  });
  return { groups, ports };
}

function policyGroups(o: Obj, path: FieldPath, notes: string[]): PolicyGroups {
  const g: PolicyGroups = {};
  if (o.loadBalancer !== undefined && o.loadBalancer !== null) g.loadBalancer = loadBalancer(o.loadBalancer, [...path, 'loadBalancer'], notes);
  if (o.connectionPool !== undefined && o.connectionPool !== null) g.connectionPool = connectionPool(o.connectionPool, [...path, 'connectionPool'], notes);
  if (o.outlierDetection !== undefined && o.outlierDetection !== null)
    g.outlierDetection = outlierDetection(o.outlierDetection, [...path, 'outlierDetection'], notes);
  if (o.retryBudget !== undefined && o.retryBudget !== null) g.retryBudget = retryBudget(o.retryBudget, [...path, 'retryBudget']);
  if (o.tls !== undefined && o.tls !== null) tls(o.tls, [...path, 'tls'], notes);
  const locality = g.loadBalancer?.locality;
  if (locality && (locality.failover.length > 0 || locality.failoverPriority.length > 0) && !g.outlierDetection)
    notes.push(`${fmt([...path, 'loadBalancer', 'localityLbSetting'])}: outlier detection policy must be provided for failover (without it no locality is ever seen to fail)`);
  return g;
}

function loadBalancer(v: unknown, path: FieldPath, notes: string[]): LoadBalancer {
  const o = object(v, path);
  knownFields(o, path, ['simple', 'consistentHash', 'localityLbSetting', 'warmupDurationSecs', 'warmup']);
  if (o.simple !== undefined && o.consistentHash !== undefined)
    throw new FieldProblem(path, 'set either simple or consistentHash, not both (they are one choice, lb_policy)');
  for (const k of ['warmupDurationSecs', 'warmup'])
    if (o[k] !== undefined) notes.push(`${fmt([...path, k])} is not applied by nodemesh`);
  const lb = balancer(o, path, notes);
  if (o.localityLbSetting !== undefined && o.localityLbSetting !== null)
    lb.locality = localityLbSetting(o.localityLbSetting, [...path, 'localityLbSetting'], notes);
  return lb;
}

function balancer(o: Obj, path: FieldPath, notes: string[]): LoadBalancer {
  if (o.consistentHash !== undefined) return { simple: 'LEAST_REQUEST', consistentHash: consistentHash(o.consistentHash, [...path, 'consistentHash'], notes) };
  const simple = o.simple;
  if (simple === undefined || simple === null) return { simple: 'LEAST_REQUEST' };
  if (typeof simple !== 'string' || !(SIMPLE as readonly string[]).includes(simple))
    throw new FieldProblem([...path, 'simple'], `expected one of ${SIMPLE.join(', ')}, found ${describeValue(simple)}; nodemesh's PEAK_EWMA is chosen with the annotation ${LOAD_BALANCER_ANNOTATION}`);
  // Istio: "UNSPECIFIED ... Istio will select an appropriate default" (LEAST_REQUEST);
  // "LEAST_CONN: Deprecated. Use LEAST_REQUEST instead."
  if (simple === 'LEAST_CONN') notes.push(`${fmt([...path, 'simple'])}: LEAST_CONN is deprecated; applied as LEAST_REQUEST`);
  if (simple === 'UNSPECIFIED' || simple === 'LEAST_CONN') return { simple: 'LEAST_REQUEST' };
  return { simple: simple as LoadBalancer['simple'] };
}

function consistentHash(v: unknown, path: FieldPath, notes: string[]): ConsistentHash {
  const o = object(v, path);
  knownFields(o, path, ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName', 'ringHash', 'maglev', 'minimumRingSize']);
  const keys = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'].filter((k) => o[k] !== undefined && o[k] !== null && o[k] !== false);
  if (keys.length !== 1)
    throw new FieldProblem(path, keys.length === 0 ? 'expected a hash key: one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName' : `set only one hash key, found ${keys.join(' and ')}`);
  if (o.minimumRingSize !== undefined && (o.ringHash !== undefined || o.maglev !== undefined))
    throw new FieldProblem(path, 'only one of MinimumRingSize or Maglev/Ringhash can be specified');
  if (o.ringHash !== undefined && o.maglev !== undefined) throw new FieldProblem(path, 'set either ringHash or maglev, not both');
  for (const k of ['minimumRingSize', 'ringHash', 'maglev'])
    if (o[k] !== undefined) notes.push(`${fmt([...path, k])} is not applied: the node proxy chooses its own consistent-hash table`);
  const base = { cookiePath: '', cookieTtlMs: 0 };
  switch (keys[0]) {
    case 'httpHeaderName':
      return { kind: 'header', name: nonEmptyString(o.httpHeaderName, [...path, 'httpHeaderName']).toLowerCase(), ...base };
    case 'httpQueryParameterName':
      return { kind: 'queryParam', name: nonEmptyString(o.httpQueryParameterName, [...path, 'httpQueryParameterName']), ...base };
    case 'useSourceIp':
      if (o.useSourceIp !== true) throw new FieldProblem([...path, 'useSourceIp'], `expected true, found ${describeValue(o.useSourceIp)}`);
      return { kind: 'sourceIp', name: '', ...base };
    default: {
      const at = [...path, 'httpCookie'];
      const c = object(o.httpCookie, at);
      knownFields(c, at, ['name', 'path', 'ttl']);
      if (typeof c.name !== 'string' || c.name === '') throw new FieldProblem([...at, 'name'], 'name required for HttpCookie');
      return {
        kind: 'cookie',
        name: c.name,
        cookiePath: optString(c.path, [...at, 'path']) ?? '',
        // "If the TTL is present and zero, the generated cookie will be a session cookie."
        cookieTtlMs: c.ttl === undefined || c.ttl === null ? 0 : istioDuration(c.ttl, [...at, 'ttl'], { allowZero: true, unbounded: true }),
      };
    }
  }
}

function connectionPool(v: unknown, path: FieldPath, notes: string[]): ConnectionPool {
  const o = object(v, path);
  knownFields(o, path, ['tcp', 'http']);
  if ((o.tcp === undefined || o.tcp === null) && (o.http === undefined || o.http === null))
    throw new FieldProblem(path, 'connection pool must have at least one field (tcp or http)');
  const d = defaultTrafficPolicy().connectionPool;
  const tcp = optObject(o.tcp, [...path, 'tcp']);
  if (tcp) {
    const at = [...path, 'tcp'];
    knownFields(tcp, at, ['maxConnections', 'connectTimeout', 'tcpKeepalive', 'maxConnectionDuration', 'idleTimeout']);
    // Istio sets a limit only when the value is > 0; 0 keeps the default (2^32-1)
    d.maxConnections = optCount(tcp.maxConnections, [...at, 'maxConnections']) || UNLIMITED;
    if (tcp.connectTimeout !== undefined) d.connectTimeoutMs = istioDuration(tcp.connectTimeout, [...at, 'connectTimeout']);
    if (tcp.maxConnectionDuration !== undefined) d.maxConnectionDurationMs = istioDuration(tcp.maxConnectionDuration, [...at, 'maxConnectionDuration']);
    // "If set to 0s, the timeout will be disabled."
    if (tcp.idleTimeout !== undefined) d.tcpIdleTimeoutMs = istioDuration(tcp.idleTimeout, [...at, 'idleTimeout'], { allowZero: true });
    if (tcp.tcpKeepalive !== undefined) notes.push(`${fmt([...at, 'tcpKeepalive'])} is not applied: the node proxy uses the kernel's keep-alive settings`);
  }
  const http = optObject(o.http, [...path, 'http']);
  if (http) {
    const at = [...path, 'http'];
    knownFields(http, at, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout', 'h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams']);
    d.http1MaxPendingRequests = optCount(http.http1MaxPendingRequests, [...at, 'http1MaxPendingRequests']) || UNLIMITED;
    d.http2MaxRequests = optCount(http.http2MaxRequests, [...at, 'http2MaxRequests']) || UNLIMITED;
    d.maxRequestsPerConnection = optCount(http.maxRequestsPerConnection, [...at, 'maxRequestsPerConnection']) ?? 0;
    d.maxRetries = optCount(http.maxRetries, [...at, 'maxRetries']) || UNLIMITED;
    if (http.idleTimeout !== undefined) d.httpIdleTimeoutMs = istioDuration(http.idleTimeout, [...at, 'idleTimeout']);
    if (http.h2UpgradePolicy === 'UPGRADE' && http.useClientProtocol === true)
      throw new FieldProblem([...at, 'useClientProtocol'], 'use client protocol must not be true when H2UpgradePolicy is UPGRADE');
    optCount(http.maxConcurrentStreams, [...at, 'maxConcurrentStreams']);
    optBoolean(http.useClientProtocol, [...at, 'useClientProtocol']);
    for (const k of ['h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams'])
      if (http[k] !== undefined) notes.push(`${fmt([...at, k])} is not applied: the node proxy keeps the caller's protocol`);
  }
  return d;
}

function outlierDetection(v: unknown, path: FieldPath, notes: string[]): OutlierDetection {
  const o = object(v, path);
  knownFields(o, path, [
    'consecutiveErrors',
    'splitExternalLocalOriginErrors',
    'consecutiveLocalOriginFailures',
    'consecutiveGatewayErrors',
    'consecutive5xxErrors',
    'interval',
    'baseEjectionTime',
    'maxEjectionPercent',
    'minHealthPercent',
  ]);
  const d = defaultTrafficPolicy().outlierDetection;
  d.enabled = true;
  const fiveXx = optWrappedCount(o.consecutive5xxErrors, [...path, 'consecutive5xxErrors']);
  const gateway = optWrappedCount(o.consecutiveGatewayErrors, [...path, 'consecutiveGatewayErrors']);
  const legacy = optCount(o.consecutiveErrors, [...path, 'consecutiveErrors']);
  // "Defaults to 5 but can be disabled by setting the value to 0."
  if (fiveXx !== undefined) d.consecutive5xxErrors = fiveXx;
  // "This feature is disabled by default or when set to the value 0."
  if (gateway !== undefined) d.consecutiveGatewayErrors = gateway;
  if (legacy !== undefined && legacy > 0) {
    notes.push(`${fmt([...path, 'consecutiveErrors'])} is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead`);
    if (fiveXx === undefined && gateway === undefined) {
      // as Istio applied it: "Only listen to gateway errors" (502, 503, 504)
      d.consecutiveGatewayErrors = legacy;
      d.consecutive5xxErrors = 0;
    }
  }
  d.splitExternalLocalOriginErrors = optBoolean(o.splitExternalLocalOriginErrors, [...path, 'splitExternalLocalOriginErrors']) ?? false;
  const local = optWrappedCount(o.consecutiveLocalOriginFailures, [...path, 'consecutiveLocalOriginFailures']);
  if (local !== undefined && local > 0 && !d.splitExternalLocalOriginErrors)
    throw new FieldProblem(
      [...path, 'consecutiveLocalOriginFailures'],
      'outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false',
    );
  if (local !== undefined) d.consecutiveLocalOriginFailures = local;
  if (o.interval !== undefined) d.intervalMs = istioDuration(o.interval, [...path, 'interval']);
  if (o.baseEjectionTime !== undefined) d.baseEjectionTimeMs = istioDuration(o.baseEjectionTime, [...path, 'baseEjectionTime']);
  // Envoy's max_ejection_time: "If not specified, the default value (300000ms or 300s) or
  // base_ejection_time value is applied, whatever is larger."
  d.maxEjectionTimeMs = Math.max(300_000, d.baseEjectionTimeMs);
  // Istio passes maxEjectionPercent only when > 0 (else Envoy's 10%)
  d.maxEjectionPercent = optInteger(o.maxEjectionPercent, [...path, 'maxEjectionPercent'], 0, 100) || 10;
  d.minHealthPercent = optInteger(o.minHealthPercent, [...path, 'minHealthPercent'], 0, 100) ?? 0;
  return d;
}

function retryBudget(v: unknown, path: FieldPath): RetryBudget {
  const o = object(v, path);
  knownFields(o, path, ['percent', 'minRetryConcurrency', 'budgetInterval']);
  const d = defaultTrafficPolicy().retryBudget;
  const pct = isObj(o.percent) ? o.percent.value : o.percent;
  // "Specifies the limit on concurrent retries as a percentage ... Defaults to 20%."
  if (pct !== undefined && pct !== null) d.percent = percent(pct, [...path, 'percent']);
  // "Specifies the minimum retry concurrency allowed for the retry budget. Defaults to 3."
  d.minRetryConcurrency = optCount(o.minRetryConcurrency, [...path, 'minRetryConcurrency'], 4294967295) ?? 3;
  // nodemesh's budget always has a window (Linkerd's model); Istio's 0 (only requests in
  // flight) is not offered: the window defaults to 10 s
  if (o.budgetInterval !== undefined) d.ttlMs = istioDuration(o.budgetInterval, [...path, 'budgetInterval']);
  return d;
}

const TLS_MODES = ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'];

function tls(v: unknown, path: FieldPath, notes: string[]): void {
  const o = object(v, path);
  knownFields(o, path, ['mode', 'clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'subjectAltNames', 'sni', 'insecureSkipVerify', 'caCrl']);
  const mode = oneOf(o.mode, [...path, 'mode'], TLS_MODES, 'DISABLE');
  if (mode === 'ISTIO_MUTUAL') {
    for (const k of ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName'])
      if (o[k] !== undefined) throw new FieldProblem([...path, k], `must be empty when mode is ISTIO_MUTUAL`);
  }
  if (mode === 'SIMPLE' || mode === 'MUTUAL')
    notes.push(`${fmt([...path, 'mode'])} ${mode} is not applied: nodemesh does not originate TLS; traffic between meshed workloads is secured by the mesh`);
}
