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
  destinationWorkload: string;
  destinationNamespace: string;
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
    destinationWorkload: labels.destination_workload,
    destinationNamespace: labels.destination_workload_namespace,
    destinationService: labels.destination_service,
    upstream: r.upstreamHost,
    retries: r.retries,
  };
  requestChannel.publish(e);
}
