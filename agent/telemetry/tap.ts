// `nodemesh tap`: every connection the node proxy carries (outbound TCP and HTTP, captured
// inbound plaintext) is published on one diagnostics channel when it opens and when it
// closes; the admin server streams the channel to whoever taps. Nothing is built or
// published while nobody listens, so the tap costs the data path one check per event.
import diagnostics from 'node:diagnostics_channel';

/** Published on open and on close of every proxied connection; `nodemesh tap` reads it. */
export const connectionChannel = diagnostics.channel('nodemesh:outbound:connection');

export interface ConnectionEvent {
  event: 'open' | 'close';
  time: string;
  source: string;
  sourceWorkload: string;
  originalDestination: string;
  service: string;
  upstream: string;
  responseFlags: string;
  receivedBytes: number;
  sentBytes: number;
  durationMs: number;
}

/** What an event says of its connection besides the moment, the flags, the bytes and the duration. */
export type ConnectionDescription = Pick<ConnectionEvent, 'source' | 'sourceWorkload' | 'originalDestination' | 'service' | 'upstream'>;

/** Whether anyone taps: check before building what publishConnection needs. */
export function tapping(): boolean {
  return connectionChannel.hasSubscribers;
}

/**
 * Publishes one event of a connection if anyone taps. `client` is the client's socket: what
 * it read was received, what it wrote was sent. `startedAt` is performance.now() at accept.
 * A captured inbound connection says so (`extra`) after the common fields.
 */
export function publishConnection(
  event: 'open' | 'close',
  connection: ConnectionDescription,
  responseFlags: string,
  client: { readonly bytesRead: number; readonly bytesWritten: number },
  startedAt: number,
  extra?: { direction: 'inbound'; security: 'none' },
): void {
  if (!connectionChannel.hasSubscribers) return;
  const e: ConnectionEvent = {
    event,
    time: new Date().toISOString(),
    ...connection,
    responseFlags,
    receivedBytes: client.bytesRead,
    sentBytes: client.bytesWritten,
    durationMs: Math.round(performance.now() - startedAt),
    ...extra,
  };
  connectionChannel.publish(e);
}

// --- per request --------------------------------------------------------------------------

/** Published when a request ends at either reporter, if anyone taps (`nodemesh tap`). */
export const requestChannel = diagnostics.channel('nodemesh:request');

export interface RequestEvent {
  event: 'request';
  time: string;
  reporter: 'source' | 'destination';
  method: string;
  authority: string;
  path: string;
  status: number;
  grpcStatus: string;
  latencyMs: number;
  responseFlags: string;
  sourceWorkload: string;
  sourceNamespace: string;
  /** the client pod's name ("" when not a pod of the snapshot) */
  sourcePod: string;
  destinationWorkload: string;
  destinationNamespace: string;
  /** the pod that answered ("" when none did or it is not a pod of the snapshot) */
  destinationPod: string;
  destinationService: string;
  upstream: string;
  retries: number;
}

export function requestTapping(): boolean {
  return requestChannel.hasSubscribers;
}

/** One ended request, as `nodemesh tap` shows it (only called while someone taps). */
export function publishRequest(
  labels: { source_workload: string; source_workload_namespace: string; destination_workload: string; destination_workload_namespace: string; destination_service: string },
  pods: { source: string; destination: string },
  r: {
    reporter: 'source' | 'destination';
    startTimeMs: number;
    durationMs: number;
    method: string;
    authority: string;
    path: string;
    status: number;
    grpcStatus: string;
    flags: string;
    upstreamHost: string;
    retries: number;
  },
): void {
  const e: RequestEvent = {
    event: 'request',
    time: new Date(r.startTimeMs).toISOString(),
    reporter: r.reporter,
    method: r.method,
    authority: r.authority,
    path: r.path,
    status: r.status,
    grpcStatus: r.grpcStatus,
    latencyMs: Math.round(r.durationMs * 10) / 10,
    responseFlags: r.flags,
    sourceWorkload: labels.source_workload,
    sourceNamespace: labels.source_workload_namespace,
    sourcePod: pods.source,
    destinationWorkload: labels.destination_workload,
    destinationNamespace: labels.destination_workload_namespace,
    destinationPod: pods.destination,
    destinationService: labels.destination_service,
    upstream: r.upstreamHost,
    retries: r.retries,
  };
  requestChannel.publish(e);
}

// --- which requests a tap shows -----------------------------------------------------------
// As `linkerd viz tap` filters: namespace (of either end), to (the destination workload or
// Service, by name or hostname), pod (either end's pod, `name` or `namespace/name`), path
// (a prefix), method, status (a code such as 503, or a class such as 5xx), reporter.
const STATUS = /^([1-5])(?:xx|\d\d)$/i;
const FILTERS = ['requests', 'namespace', 'to', 'pod', 'path', 'method', 'status', 'reporter'];

/** Why a tap's query cannot be used (an unknown filter, a bad status or reporter), or undefined. */
export function badRequestFilter(q: URLSearchParams): string | undefined {
  for (const k of q.keys()) if (!FILTERS.includes(k)) return `tap: unknown filter ${JSON.stringify(k)}; the filters are ${FILTERS.slice(1).join(', ')}`;
  const status = q.get('status');
  if (status !== null && !STATUS.test(status)) return `tap: status=${JSON.stringify(status)} is not a status code (503) or class (5xx)`;
  const reporter = q.get('reporter');
  if (reporter !== null && reporter !== 'source' && reporter !== 'destination') return `tap: reporter=${JSON.stringify(reporter)} is neither source nor destination`;
  const path = q.get('path');
  if (path !== null && !path.startsWith('/')) return `tap: path=${JSON.stringify(path)} is not a path prefix (it starts with /)`;
  return undefined;
}

/** The filter of a tap's query (checked by badRequestFilter first). */
export function requestFilter(q: URLSearchParams): (e: RequestEvent) => boolean {
  const ns = q.get('namespace');
  const to = q.get('to');
  const pod = q.get('pod');
  const path = q.get('path');
  const method = q.get('method')?.toUpperCase();
  const status = q.get('status');
  const statusClass = status && /xx$/i.test(status) ? Number(status[0]) : undefined;
  const statusCode = status && statusClass === undefined ? Number(status) : undefined;
  const reporter = q.get('reporter');
  const podIs = (name: string, namespace: string) => {
    if (!pod || !name) return false;
    const slash = pod.indexOf('/');
    return slash < 0 ? name === pod : namespace === pod.slice(0, slash) && name === pod.slice(slash + 1);
  };
  return (e) =>
    (!ns || e.sourceNamespace === ns || e.destinationNamespace === ns) &&
    (!to || e.destinationWorkload === to || e.destinationService === to || e.destinationService.startsWith(`${to}.`)) &&
    (!pod || podIs(e.sourcePod, e.sourceNamespace) || podIs(e.destinationPod, e.destinationNamespace)) &&
    (!path || e.path.startsWith(path)) &&
    (!method || e.method === method) &&
    (statusCode === undefined || e.status === statusCode) &&
    (statusClass === undefined || Math.floor(e.status / 100) === statusClass) &&
    (!reporter || e.reporter === reporter);
}
