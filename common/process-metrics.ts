// prom-client's default process and Node.js metrics, minus the three gauges it names with a
// counter's `_total` suffix (nodejs_active_handles_total, _requests_total, _resources_total:
// `promtool check metrics` rejects them, and a rate() over a gauge misleads). Their content
// stays in prom-client's own nodejs_active_handles, _requests and _resources gauges (by type).
// Its own module, loaded once a process serves: prom-client's default metrics pull in
// @opentelemetry/api (prometheus.ts).
import { collectDefaultMetrics, type Registry } from './prometheus.js';

const MISNAMED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function collectProcessMetrics(registry: Registry, prefix = ''): void {
  collectDefaultMetrics()({ register: registry, prefix });
  for (const name of MISNAMED) registry.removeSingleMetric(prefix + name);
}
