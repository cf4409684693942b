// The control plane's Prometheus metrics, defined in one place. Each control plane owns its
// registry (tests run several in one process); /metrics on the admin port serves it.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

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
}

export function createControlMetrics(opts: { processMetrics?: boolean } = {}): ControlMetrics {
  const registry = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: registry });
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
  };
}
