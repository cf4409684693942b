// prom-client's default process and Node.js metrics, minus the three gauges it names with a
// counter's `_total` suffix (nodejs_active_handles_total, _requests_total, _resources_total:
// `promtool check metrics` rejects them, and a rate() over a gauge misleads). Their content
// stays in prom-client's own nodejs_active_handles, _requests and _resources gauges (by type).
// Its own module, loaded once a process serves: prom-client's default metrics pull in
// @opentelemetry/api (prometheus.ts).
import { collectDefaultMetrics, type Registry } from './prometheus.js';

const MISNAMED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * How often the event-loop delay histogram behind nodejs_eventloop_lag_{min,max,mean,p50,
 * p90,p99}_seconds samples the loop. prom-client's default, 10 ms, is a timer that wakes
 * an idle process 100 times a second: in the bench lab it was most of an idle agent's CPU
 * (both agents 13–17 CPU-ms per second idle at 10 ms, 4–6 at 100 ms; ARCHITECTURE.md, "An
 * idle agent"). At 100 ms a stall of d ms is still seen with probability ~d/100 per
 * stall, and every stall of 100 ms or more always; nodejs_eventloop_lag_seconds (measured
 * at each scrape) is unchanged.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

export function collectProcessMetrics(registry: Registry, prefix = ''): void {
  collectDefaultMetrics()({ register: registry, prefix, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  for (const name of MISNAMED) registry.removeSingleMetric(prefix + name);
}
