// Reading the agent's metrics in tests: a metric's value summed over the series whose labels
// include the ones given (all series when none are given).
import type { Registry } from 'prom-client';
import { registry as agentRegistry } from '../../agent/telemetry/metrics.js';

export async function metricValue(name: string, labels: Record<string, string>, registry: Registry = agentRegistry): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const data = await m.get();
  return data.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((a, v) => a + v.value, 0);
}
