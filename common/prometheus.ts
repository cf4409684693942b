// prom-client's metric classes, loaded without its index. The index also loads the default
// process metrics (and through them @opentelemetry/api, 51 modules), the Pushgateway (http,
// https, zlib) and the cluster aggregator: ~80 ms of CPU at every start, which a restarted
// node agent would spend before its proxy accepts (ARCHITECTURE.md, "Start-up order"). These
// are the very files the index exports, so there is one Registry class and one global
// registry whichever way a module got them. Type-only imports of 'prom-client' cost nothing
// and stay as they are; the process metrics come later through process-metrics.ts.
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

const require = createRequire(import.meta.url);

export const Registry: typeof Prom.Registry = require('prom-client/lib/registry');
export const Counter: typeof Prom.Counter = require('prom-client/lib/counter');
export const Gauge: typeof Prom.Gauge = require('prom-client/lib/gauge');
export const Histogram: typeof Prom.Histogram = require('prom-client/lib/histogram');

/** the default process and Node.js metrics (process-metrics.ts): loads @opentelemetry/api, so only when asked */
export function collectDefaultMetrics(): typeof Prom.collectDefaultMetrics {
  return require('prom-client/lib/defaultMetrics');
}

/** the workers' aggregation (agent/workers/worker-pool.ts): loads node:cluster, so only when asked */
export function aggregatorRegistry(): typeof Prom.AggregatorRegistry {
  return require('prom-client/lib/cluster');
}

export type Registry = Prom.Registry;
export type Counter<T extends string = string> = Prom.Counter<T>;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export type Histogram<T extends string = string> = Prom.Histogram<T>;
