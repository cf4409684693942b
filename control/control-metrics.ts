// The control plane's Prometheus metrics, defined in one place. Each control plane owns its
// registry (tests run several in one process); /metrics on the admin port serves it.
import { Counter, Gauge, Registry } from 'prom-client';
import { collectProcessMetrics } from '../common/process-metrics.js';

export interface ControlMetrics {
  registry: Registry;
  /** every configuration error when it appears (code: NM_ERR_CONFIG_*, kind: resource kind or "") */
  configErrors: Counter<'code' | 'kind'>;
  snapshotVersion: Gauge;
  /** snapshots written to agent streams */
  snapshotPushes: Counter;
  connectedAgents: Gauge;
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
  };
}
