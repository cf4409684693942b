// The agent's Prometheus metrics, defined in one place. Names and labels are Istio's
// standard ones (https://istio.io/latest/docs/reference/config/metrics/) so existing
// dashboards and queries carry over; missing values are "unknown", as Istio reports them.
import { Counter, Gauge, Registry } from '../../common/prometheus.js';
import { SeriesCounter, SeriesHistogram } from './metrics-series.js';
import { CLUSTER_ID_DEFAULT, type Service, type Workload } from '../../control/api/snapshot.js';
import { workloadName } from './workload-name.js';
import { HTTP_ONLY_LABELS, ISTIO_LABELS } from '../../control/api/snapshot-telemetry.js';

export const registry = new Registry();

let processMetrics: Promise<void> | undefined;
/**
 * The process's own series (nodemesh_agent_process_*, _nodejs_*), added once the process
 * serves: their module loads @opentelemetry/api, which a restart does not wait for.
 */
export function collectAgentProcessMetrics(): Promise<void> {
  processMetrics ??= import('../../common/process-metrics.js').then(({ collectProcessMetrics }) => collectProcessMetrics(registry, 'nodemesh_agent_'));
  return processMetrics;
}

export { ISTIO_LABELS };

export type IstioLabels = Record<(typeof ISTIO_LABELS)[number], string>;

export const tcpConnectionsOpened = new Counter({
  name: 'istio_tcp_connections_opened_total',
  help: 'Connections opened through the node proxy',
  labelNames: ISTIO_LABELS,
  registers: [registry],
});
export const tcpConnectionsClosed = new Counter({
  name: 'istio_tcp_connections_closed_total',
  help: 'Connections closed through the node proxy',
  labelNames: ISTIO_LABELS,
  registers: [registry],
});
// Byte counters of open connections are brought up to date when Prometheus scrapes (and
// periodically), so a long-lived connection shows its traffic before it closes
// (agent/transport/flow.ts).
const scrapeHooks: Array<() => void> = [];
export function onScrape(fn: () => void): () => void {
  scrapeHooks.push(fn);
  return () => {
    const i = scrapeHooks.indexOf(fn);
    if (i >= 0) scrapeHooks.splice(i, 1);
  };
}

// Istio: "sent" is the response direction (upstream → client), "received" the request
// direction (client → upstream).
export const tcpSentBytes = new Counter({
  name: 'istio_tcp_sent_bytes_total',
  help: 'Bytes sent to the client during the response of a TCP connection',
  labelNames: ISTIO_LABELS,
  registers: [registry],
  collect() {
    for (const fn of scrapeHooks) fn();
  },
});
export const tcpReceivedBytes = new Counter({
  name: 'istio_tcp_received_bytes_total',
  help: 'Bytes received from the client during the request of a TCP connection',
  labelNames: ISTIO_LABELS,
  registers: [registry],
});

// HTTP and gRPC requests through the L7 engine (agent/l7/). Labels: Istio's set plus
// response_code and grpc_response_status; the label objects are built once per
// (source, destination, endpoint) and their series kept (request-telemetry.ts), which
// metrics-series.ts makes a few additions per request instead of prom-client's label hashing.
export const HTTP_LABELS = [...ISTIO_LABELS, ...HTTP_ONLY_LABELS] as const;
export type HttpLabels = Record<(typeof HTTP_LABELS)[number], string>;
/** Envoy's default histogram buckets (ms) */
export const DURATION_BUCKETS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
/** Istio's byte-size buckets: powers of ten from 1 B to 1 GB */
export const BYTE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

export const requestsTotal = new SeriesCounter({
  name: 'istio_requests_total',
  help: 'Requests through the node proxy',
  labelNames: HTTP_LABELS,
  registers: [registry],
});
export const requestDuration = new SeriesHistogram({
  name: 'istio_request_duration_milliseconds',
  help: 'Duration of requests through the node proxy, from request start to the last response byte',
  labelNames: HTTP_LABELS,
  buckets: DURATION_BUCKETS_MS,
  registers: [registry],
});
export const requestBytes = new SeriesHistogram({
  name: 'istio_request_bytes',
  help: 'Request body sizes',
  labelNames: HTTP_LABELS,
  buckets: BYTE_BUCKETS,
  registers: [registry],
});
export const responseBytes = new SeriesHistogram({
  name: 'istio_response_bytes',
  help: 'Response body sizes',
  labelNames: HTTP_LABELS,
  buckets: BYTE_BUCKETS,
  registers: [registry],
});

export const enrolledPods = new Gauge({
  name: 'nodemesh_agent_enrolled_pods',
  help: 'Pod network namespaces whose connections the datapath redirects',
  registers: [registry],
});

export const cniRequests = new Counter({
  name: 'nodemesh_agent_cni_requests_total',
  help: 'Requests of the chained CNI plugin, by command and answer (refused: the pod is not created)',
  labelNames: ['command', 'status'],
  registers: [registry],
});
export const snapshotVersion = new Gauge({
  name: 'nodemesh_agent_snapshot_version',
  help: 'Version of the last snapshot received from the control plane',
  registers: [registry],
});
export const datapathReconciles = new Counter({
  name: 'nodemesh_agent_datapath_reconciles_total',
  help: "Reconciles of the node's enrolment and inbound capture with its pods, by trigger (snapshot: one that changed this node's pods; rescan: the 30-s safety net; start)",
  labelNames: ['trigger'],
  registers: [registry],
});
export const snapshotsRejected = new Counter({
  name: 'nodemesh_agent_snapshots_rejected_total',
  help: 'Snapshots from the control plane refused by the check at arrival (the last good one stays in use); the log names the field',
  registers: [registry],
});
export const controlPlaneConnected = new Gauge({
  name: 'nodemesh_agent_control_plane_connected',
  help: 'Whether the snapshot stream from the control plane is up (1) or down (0: the last good snapshot and certificates stay in use)',
  registers: [registry],
});
export const adminRefused = new Counter({
  name: 'nodemesh_agent_admin_refused_total',
  help: 'Requests to the admin port refused: from neither the node nor a trusted network, without a valid token, or over the connection limit',
  labelNames: ['reason'],
  registers: [registry],
});
export const proxyErrors = new Counter({
  name: 'nodemesh_agent_proxy_errors_total',
  help: 'Connections the outbound proxy could not serve, by reason',
  labelNames: ['reason'],
  registers: [registry],
});

/** The cluster of a peer the snapshot does not know (its own workloads say theirs). */
export const CLUSTER_ID = process.env.NODEMESH_CLUSTER_ID ?? CLUSTER_ID_DEFAULT;

/** Istio's canonical service/revision: its labels first, then the common app labels. */
function canonical(w: Workload): { service: string; revision: string } {
  const l = w.labels;
  return {
    service: l['service.istio.io/canonical-name'] ?? l['app.kubernetes.io/name'] ?? l.app ?? w.name,
    revision: l['service.istio.io/canonical-revision'] ?? l['app.kubernetes.io/version'] ?? l.version ?? 'latest',
  };
}

/**
 * Labels of one proxied TCP connection, computed once when it opens (never per chunk).
 * Principals: "unknown"; a transport that proves them (HBONE's mTLS) fills them in.
 */
export function tcpLabels(
  source: Workload | undefined,
  service: Service | undefined,
  destination: Workload | undefined,
  destinationAddress: string,
  responseFlags: string,
): IstioLabels {
  const sc = source ? canonical(source) : undefined;
  const dc = destination ? canonical(destination) : undefined;
  return {
    reporter: 'source',
    source_workload: source ? workloadName(source) : 'unknown',
    source_workload_namespace: source?.namespace ?? 'unknown',
    source_principal: 'unknown',
    source_app: source?.labels.app ?? 'unknown',
    source_version: source?.labels.version ?? 'unknown',
    source_canonical_service: sc?.service ?? 'unknown',
    source_canonical_revision: sc?.revision ?? 'unknown',
    source_cluster: source?.cluster ?? CLUSTER_ID,
    destination_service: service?.hostname ?? destinationAddress,
    destination_service_name: service?.name ?? 'unknown',
    destination_service_namespace: service?.namespace ?? 'unknown',
    destination_workload: destination ? workloadName(destination) : 'unknown',
    destination_workload_namespace: destination?.namespace ?? 'unknown',
    destination_principal: 'unknown',
    destination_app: destination?.labels.app ?? 'unknown',
    destination_version: destination?.labels.version ?? 'unknown',
    destination_canonical_service: dc?.service ?? 'unknown',
    destination_canonical_revision: dc?.revision ?? 'unknown',
    destination_cluster: destination?.cluster ?? CLUSTER_ID,
    request_protocol: 'tcp',
    response_flags: responseFlags,
    connection_security_policy: 'none',
  };
}

/**
 * Labels of one connection delivered to a local pod, reported by the destination's node
 * proxy (reporter="destination"): the principals as the mTLS handshake proved them
 * (SPIFFE IDs, "unknown" for plaintext), and connection_security_policy "mutual_tls" or
 * "none" (plaintext accepted under PERMISSIVE).
 */
export function tcpLabelsDestination(
  source: Workload | undefined,
  sourcePrincipal: string | undefined,
  service: Service | undefined,
  destination: Workload,
  security: 'mutual_tls' | 'none',
  responseFlags: string,
): IstioLabels {
  return {
    ...tcpLabels(source, service, destination, service?.hostname ?? 'unknown', responseFlags),
    reporter: 'destination',
    source_principal: sourcePrincipal ?? 'unknown',
    destination_principal: security === 'mutual_tls' ? destination.spiffeId : 'unknown',
    connection_security_policy: security,
  };
}

export const authorizationDenials = new Counter({
  name: 'nodemesh_agent_authorization_denials_total',
  help: 'Inbound connections and requests refused by policy: reason (mtls_strict, deny_policy, no_allow_match), policy (namespace/name, "-" when none), layer (tcp, http)',
  labelNames: ['reason', 'policy', 'layer'],
  registers: [registry],
});
export const connectionsClosedByPolicy = new Counter({
  name: 'nodemesh_agent_connections_closed_by_policy_total',
  help: 'Open inbound connections closed because a policy applied after they were accepted no longer admits them: reason (mtls_strict, deny_policy, no_allow_match), policy (namespace/name, "-" when none)',
  labelNames: ['reason', 'policy'],
  registers: [registry],
});
export const authorizationAudits = new Counter({
  name: 'nodemesh_agent_authorization_audit_total',
  help: 'Inbound connections and requests an AUDIT AuthorizationPolicy matched',
  labelNames: ['policy', 'layer'],
  registers: [registry],
});
export const authorizationDryRun = new Counter({
  name: 'nodemesh_agent_authorization_dry_run_total',
  help: 'Inbound connections and requests a dry-run (istio.io/dry-run) AuthorizationPolicy matched; never enforced',
  labelNames: ['policy', 'layer'],
  registers: [registry],
});
