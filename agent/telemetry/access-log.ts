// Access logs: one line per HTTP request (and per TCP connection) at the reporter that saw
// it, with Envoy's default fields under the keys of Istio's JSON format (start_time, method,
// path, protocol, response_code, response_flags, bytes_received, bytes_sent, duration,
// upstream_service_time, x_forwarded_for, user_agent, request_id, authority, upstream_host,
// upstream_cluster, route_name …) plus the mesh's own: reporter, source/destination workload,
// namespace and principal, retries, trace id. TEXT is Envoy's default format line.
//
// Who logs is what Istio's Telemetry resource says for the reporter's workload (resolved
// per workload in telemetry-policy.ts: enabled, and a filter such as `response.code >= 400`);
// without a Telemetry the agent's --access-log default applies (off, as in Istio).
//
// Lines go through pino's asynchronous destination (sonic-boom): written from a buffer when
// the fd is writable, never blocking the event loop; past MAX_BUFFERED bytes unwritten, lines
// are dropped and counted. A per-node rate (token bucket, --access-log-rate lines/s) bounds
// what a flood of requests can write to a disk.
import pino from 'pino';
import { Counter } from '../../common/prometheus.js';
import { registry, type IstioLabels } from './metrics.js';
import { passes, type FilterAttribute } from '../../control/api/telemetry-filter.js';
import { accessLogRule, type Subject } from './telemetry-policy.js';

export type AccessLogEncoding = 'JSON' | 'TEXT';

export interface AccessLogOptions {
  /** a file, or '' / '/dev/stdout' for stdout */
  path: string;
  encoding: AccessLogEncoding;
  /** lines per second for the whole node (burst: one second's worth) */
  ratePerSecond: number;
}

export const DEFAULT_ACCESS_LOG: AccessLogOptions = { path: '/dev/stdout', encoding: 'JSON', ratePerSecond: 1000 };
const MAX_BUFFERED = 16 << 20;

export const accessLogDropped = new Counter({
  name: 'nodemesh_agent_access_log_dropped_total',
  help: 'Access-log lines not written: over the per-node rate (rate) or the unwritten buffer full (buffer)',
  labelNames: ['reason'],
  registers: [registry],
});
export const accessLogLines = new Counter({
  name: 'nodemesh_agent_access_log_lines_total',
  help: 'Access-log lines written, by kind (http, tcp)',
  labelNames: ['kind'],
  registers: [registry],
});

type Sink = ReturnType<typeof pino.destination>;
let options = DEFAULT_ACCESS_LOG;
let sink: Sink | undefined;
let tokens = 0;
let refilledAt = 0;

/** The agent's access-log output (flags); the sink opens on the first line. */
export function configureAccessLog(o: Partial<AccessLogOptions>): void {
  closeAccessLog();
  options = { ...DEFAULT_ACCESS_LOG, ...o };
  tokens = options.ratePerSecond;
  refilledAt = performance.now();
}

/** Flushes and closes the sink (agent stop). */
export function closeAccessLog(): void {
  const s = sink;
  sink = undefined;
  if (!s) return;
  try {
    s.flushSync();
  } catch {
    // EAGAIN on a full pipe: what is left is dropped rather than blocking the stop
  }
  s.end();
}

function open(): Sink {
  const toStdout = options.path === '' || options.path === '/dev/stdout';
  const s = pino.destination({ ...(toStdout ? { fd: 1 } : { dest: options.path, mkdir: true }), sync: false, minLength: 0, maxLength: MAX_BUFFERED });
  s.on('drop', () => accessLogDropped.inc({ reason: 'buffer' }));
  s.on('error', () => accessLogDropped.inc({ reason: 'buffer' }));
  return s;
}

function admit(): boolean {
  const now = performance.now();
  const rate = options.ratePerSecond;
  tokens = Math.min(rate, tokens + ((now - refilledAt) / 1000) * rate);
  refilledAt = now;
  if (tokens < 1) {
    accessLogDropped.inc({ reason: 'rate' });
    return false;
  }
  tokens--;
  return true;
}

function write(line: string, kind: 'http' | 'tcp'): void {
  if (!admit()) return;
  (sink ??= open()).write(line);
  accessLogLines.inc({ kind });
}

/** What a request line is made of (telemetry/request-record.ts's RequestRecord). */
export interface LoggedRequest {
  reporter: 'source' | 'destination';
  startTimeMs: number;
  durationMs: number;
  upstreamServiceMs: number;
  method: string;
  path: string;
  authority: string;
  protocolName: string;
  status: number;
  grpcStatus: string;
  flags: string;
  reqBytes: number;
  respBytes: number;
  upstreamHost: string;
  upstreamCluster: string;
  routeName: string;
  retries: number;
  downstreamRemote: string;
  header(name: string): string | undefined;
  traceOps: { set: Record<string, string> } | undefined;
}

/** The request id as forwarded: the client's, or the one this proxy generated. */
const requestId = (r: LoggedRequest) => r.traceOps?.set['x-request-id'] ?? r.header('x-request-id');

/** Logs a request if the reporter's workload's Telemetry says so (and its filter passes). */
export function logRequest(subject: Subject, labels: IstioLabels, r: LoggedRequest, traceId: string): void {
  const rule = accessLogRule(subject, r.reporter);
  if (!rule) return;
  if (rule.filter && !passes(rule.filter, (a) => requestAttribute(a, labels, r))) return;
  write(options.encoding === 'TEXT' ? textLine(labels, r) : jsonLine(labels, r, traceId), 'http');
}

function requestAttribute(a: FilterAttribute, labels: IstioLabels, r: LoggedRequest): string | number | boolean {
  switch (a) {
    case 'response.code':
      return r.status;
    case 'response.grpc_status':
      return r.grpcStatus;
    case 'response.flags':
      return r.flags;
    case 'response.duration':
      return r.durationMs;
    case 'request.method':
      return r.method;
    case 'request.path':
    case 'request.url_path':
      return r.path;
    case 'request.host':
      return r.authority;
    case 'request.protocol':
      return r.protocolName;
    case 'connection.mtls':
      return labels.connection_security_policy === 'mutual_tls';
  }
}

const dash = (v: string | undefined) => (v === undefined || v === '' ? '-' : v);
const ms = (v: number) => (v < 0 ? '-' : String(Math.round(v)));

/** Istio's JSON access-log keys, with the mesh's fields after them. */
function jsonLine(l: IstioLabels, r: LoggedRequest, traceId: string): string {
  return `${JSON.stringify({
    start_time: new Date(r.startTimeMs).toISOString(),
    method: r.method,
    path: r.path,
    protocol: r.protocolName,
    response_code: r.status,
    response_flags: r.flags,
    bytes_received: r.reqBytes,
    bytes_sent: r.respBytes,
    duration: Math.round(r.durationMs),
    upstream_service_time: r.upstreamServiceMs < 0 ? null : Math.round(r.upstreamServiceMs),
    x_forwarded_for: r.header('x-forwarded-for') ?? null,
    user_agent: r.header('user-agent') ?? null,
    request_id: requestId(r) ?? null,
    authority: r.authority,
    upstream_host: r.upstreamHost || null,
    upstream_cluster: r.upstreamCluster || null,
    downstream_remote_address: r.downstreamRemote,
    route_name: r.routeName || null,
    grpc_status: r.grpcStatus || null,
    upstream_request_attempt_count: r.retries + 1,
    reporter: r.reporter,
    ...peers(l),
    retries: r.retries,
    trace_id: traceId || null,
  })}\n`;
}

/** Who talked to whom, as every JSON line (request or connection) names it. */
function peers(l: IstioLabels) {
  return {
    source_workload: l.source_workload,
    source_namespace: l.source_workload_namespace,
    source_principal: l.source_principal,
    destination_workload: l.destination_workload,
    destination_namespace: l.destination_workload_namespace,
    destination_principal: l.destination_principal,
    destination_service: l.destination_service,
    connection_security_policy: l.connection_security_policy,
  };
}

/**
 * Envoy's default format: [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%
 * %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
 * %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
 * "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%", then Istio's additions
 * (upstream cluster, downstream remote address, route name).
 */
function textLine(_l: IstioLabels, r: LoggedRequest): string {
  return `[${new Date(r.startTimeMs).toISOString()}] "${r.method} ${r.path} ${r.protocolName}" ${r.status} ${r.flags} ${r.reqBytes} ${r.respBytes} ${ms(r.durationMs)} ${ms(r.upstreamServiceMs)} "${dash(r.header('x-forwarded-for'))}" "${dash(r.header('user-agent'))}" "${dash(requestId(r))}" "${dash(r.authority)}" "${dash(r.upstreamHost)}" ${dash(r.upstreamCluster)} ${dash(r.downstreamRemote)} ${dash(r.routeName)}\n`;
}

/** One TCP connection's line (Envoy's TCP proxy log: no method, path or code). */
export function logConnection(
  subject: Subject,
  l: IstioLabels,
  c: { startTimeMs: number; durationMs: number; received: number; sent: number; upstreamHost: string; downstreamRemote: string },
): void {
  const rule = accessLogRule(subject, l.reporter === 'destination' ? 'destination' : 'source');
  if (!rule) return;
  if (rule.filter && !passes(rule.filter, (a) => (a === 'connection.mtls' ? l.connection_security_policy === 'mutual_tls' : a === 'response.flags' ? l.response_flags : a === 'response.duration' ? c.durationMs : a === 'response.code' ? 0 : '')))
    return;
  const line =
    options.encoding === 'TEXT'
      ? `[${new Date(c.startTimeMs).toISOString()}] "- - -" 0 ${l.response_flags} ${c.received} ${c.sent} ${Math.round(c.durationMs)} - "-" "-" "-" "-" "${dash(c.upstreamHost)}" - ${dash(c.downstreamRemote)} -\n`
      : `${JSON.stringify({
          start_time: new Date(c.startTimeMs).toISOString(),
          method: null,
          path: null,
          protocol: null,
          response_code: 0,
          response_flags: l.response_flags,
          bytes_received: c.received,
          bytes_sent: c.sent,
          duration: Math.round(c.durationMs),
          upstream_host: c.upstreamHost || null,
          downstream_remote_address: c.downstreamRemote,
          reporter: l.reporter,
          ...peers(l),
        })}\n`;
  write(line, 'tcp');
}
