// The agent's telemetry settings where no Telemetry resource speaks (Istio's MeshConfig
// defaults: accessLogFile, accessLogEncoding, the default sampling and tracer). Read from
// the environment, as the DaemonSet sets them:
//   NODEMESH_ACCESS_LOG           on | off (default off, as Istio): the mesh default
//   NODEMESH_ACCESS_LOG_FILE      a path, or /dev/stdout (default)
//   NODEMESH_ACCESS_LOG_ENCODING  JSON (default) | TEXT (Envoy's default format line)
//   NODEMESH_ACCESS_LOG_RATE      lines per second per node (default 1000)
//   NODEMESH_TRACE_SAMPLING       percentage of requests traced by default (default 1)
//   NODEMESH_OTLP_ENDPOINT        the collector's OTLP/HTTP traces URL (http://host:4318/v1/traces); unset: no spans
import { NodemeshError } from '../../common/errors.js';
import { configureAccessLog, closeAccessLog, type AccessLogEncoding } from './access-log.js';
import { setTelemetryDefaults, setTelemetryPolicies } from './telemetry-policy.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { pruneSeries } from './request-telemetry.js';
import { workloadName } from './workload-name.js';
import { configureTracing, closeTracing } from './tracing.js';

function bad(name: string, value: string, expected: string): never {
  throw new NodemeshError('NM_ERR_TELEMETRY', `${name}=${JSON.stringify(value)} is not valid: expected ${expected}`);
}

export function configureTelemetry(env: NodeJS.ProcessEnv = process.env): void {
  const on = env.NODEMESH_ACCESS_LOG ?? 'off';
  if (on !== 'on' && on !== 'off') bad('NODEMESH_ACCESS_LOG', on, 'on or off');
  const encoding = (env.NODEMESH_ACCESS_LOG_ENCODING ?? 'JSON').toUpperCase();
  if (encoding !== 'JSON' && encoding !== 'TEXT') bad('NODEMESH_ACCESS_LOG_ENCODING', encoding, 'JSON or TEXT');
  const rate = Number(env.NODEMESH_ACCESS_LOG_RATE ?? 1000);
  if (!(rate > 0)) bad('NODEMESH_ACCESS_LOG_RATE', env.NODEMESH_ACCESS_LOG_RATE ?? '', 'a positive number of lines per second');
  const sampling = Number(env.NODEMESH_TRACE_SAMPLING ?? 1);
  if (!(sampling >= 0 && sampling <= 100)) bad('NODEMESH_TRACE_SAMPLING', env.NODEMESH_TRACE_SAMPLING ?? '', 'a percentage from 0 to 100');
  const endpoint = env.NODEMESH_OTLP_ENDPOINT ?? '';
  if (endpoint && !/^https?:\/\//.test(endpoint)) bad('NODEMESH_OTLP_ENDPOINT', endpoint, 'an http:// or https:// URL');
  configureAccessLog({ path: env.NODEMESH_ACCESS_LOG_FILE ?? '/dev/stdout', encoding: encoding as AccessLogEncoding, ratePerSecond: rate });
  setTelemetryDefaults({ accessLog: on === 'on', samplingPercent: sampling });
  configureTracing({ endpoint, node: env.NODEMESH_NODE_NAME ?? '' });
}

/** A new snapshot: its Telemetry resources, and the series of workloads that left dropped. */
export function applyTelemetry(s: Pick<Snapshot, 'telemetry' | 'workloads'>): void {
  setTelemetryPolicies(s.telemetry ?? []);
  pruneSeries(new Set(s.workloads.map((w) => `${w.namespace}/${workloadName(w)}`)));
}

export async function closeTelemetry(): Promise<void> {
  closeAccessLog();
  await closeTracing();
}
