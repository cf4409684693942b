// Reading the agent's metrics in tests as a scrape does (every collect hook runs, so open
// flows are flushed first): a metric's value summed over the series whose labels include
// the ones given (all series when none are given).
import type { Registry } from 'prom-client';
import { registry as agentRegistry } from '../../agent/telemetry/metrics.js';

export async function metricValue(name: string, labels: Record<string, string>, registry: Registry = agentRegistry): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((a, v) => a + v.value, 0);
}

/** The sum of a histogram's observations (its `_sum` series) over the series whose labels include the ones given. */
export async function histogramSum(name: string, labels: Record<string, string>, registry: Registry = agentRegistry): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name) as
    { values: { metricName?: string; labels: Record<string, string | number>; value: number }[] } | undefined;
  return (m?.values ?? [])
    .filter((v) => v.metricName === `${name}_sum` && Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((a, v) => a + v.value, 0);
}
