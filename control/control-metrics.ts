// The control plane's Prometheus metrics, defined in one place. Each control plane owns its
// registry (tests run several in one process); /metrics on the admin port serves it.
import { Counter, Gauge, Histogram, Registry } from '../common/prometheus.js';
import { collectProcessMetrics } from '../common/process-metrics.js';

export interface ControlMetrics {
  registry: Registry;
  /** every configuration error when it appears (code: NM_ERR_CONFIG_*, kind: resource kind or "") */
  configErrors: Counter<'code' | 'kind'>;
  snapshotVersion: Gauge;
  /** snapshots written to agent streams */
  snapshotPushes: Counter;
  connectedAgents: Gauge;
  /** `--source kubernetes`: lists, relists (after 410 Gone), watches started, errors, types found absent, per kind */
  kubeEvents: Counter<'kind' | 'event'>;
  /** `--source kubernetes`: 1 while this replica holds the leader Lease (writes status, creates the CA root) */
  leader: Gauge;
  /** status subresources written (result: written, conflict, error) */
  statusWrites: Counter<'kind' | 'result'>;
  /** Istio's pilot_xds_pushes (type: the one snapshot type nodemesh pushes) */
  xdsPushes: Counter<'type'>;
  /** Istio's pilot_xds_config_size_bytes: the bytes of each push, by type (whole or delta) */
  configSize: Histogram<'type'>;
  /** Istio's pilot_proxy_convergence_time: from the snapshot's compile to its write to an agent */
  convergence: Histogram;
  /** the same, per agent (node: bounded by the cluster's nodes) */
  pushLatency: Histogram<'node'>;
}

export function createControlMetrics(opts: { processMetrics?: boolean } = {}): ControlMetrics {
  const registry = new Registry();
  if (opts.processMetrics) collectProcessMetrics(registry);
  return {
    registry,
    configErrors: new Counter({
      name: 'nodemesh_config_errors_total',
      help: 'Configuration errors (rejected resources, unreadable files), counted when they appear',
      labelNames: ['code', 'kind'] as const,
      registers: [registry],
    }),
    snapshotVersion: new Gauge({
      name: 'nodemesh_snapshot_version',
      help: 'Version of the current snapshot (0 before the first compile)',
      registers: [registry],
    }),
    snapshotPushes: new Counter({
      name: 'nodemesh_snapshot_pushes_total',
      help: 'Snapshots sent to node agents',
      registers: [registry],
    }),
    connectedAgents: new Gauge({
      name: 'nodemesh_connected_agents',
      help: 'Node agents with an open Watch stream',
      registers: [registry],
    }),
    kubeEvents: new Counter({
      name: 'nodemesh_kube_watch_events_total',
      help: 'Kubernetes source: lists, relists (410 Gone), watches started, failed list/watch calls and types found not installed, per kind',
      labelNames: ['kind', 'event'] as const,
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'nodemesh_control_leader',
      help: 'Kubernetes source: 1 while this control-plane replica holds the leader Lease nodemesh-control, else 0',
      registers: [registry],
    }),
    statusWrites: new Counter({
      name: 'nodemesh_status_writes_total',
      help: 'Kubernetes source: status subresources written by the leader, per kind and result (written, conflict, error)',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
    xdsPushes: new Counter({
      name: 'pilot_xds_pushes',
      help: "Pushes to agents (Istio's name; type: nodemesh.snapshot, the whole configuration, or nodemesh.snapshot.delta, what changed since the version before)",
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    configSize: new Histogram({
      name: 'pilot_xds_config_size_bytes',
      help: "Bytes of each push to an agent, by type as pilot_xds_pushes (Istio's name and buckets)",
      labelNames: ['type'] as const,
      buckets: [1, 10_000, 1_000_000, 4_000_000, 10_000_000, 40_000_000],
      registers: [registry],
    }),
    convergence: new Histogram({
      name: 'pilot_proxy_convergence_time',
      help: "Seconds from a configuration change (the snapshot's compile) to its push to an agent (Istio's name)",
      buckets: [0.1, 0.5, 1, 3, 5, 10, 20, 30],
      registers: [registry],
    }),
    pushLatency: new Histogram({
      name: 'nodemesh_snapshot_push_seconds',
      help: "Seconds from a snapshot's compile to its push, per agent node",
      labelNames: ['node'] as const,
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [registry],
    }),
  };
}
