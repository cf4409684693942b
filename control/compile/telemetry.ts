// Telemetry resources → the snapshot's telemetry policies, oldest first (creationTimestamp,
// then namespace/name), so the agent's "oldest matching selector wins" is a first match.
import type { TelemetryPolicy } from '../api/snapshot-telemetry.js';
import type { Resource } from '../model/resources.js';

export function compileTelemetry(resources: readonly Resource[]): TelemetryPolicy[] {
  const out: { createdAt: number; p: TelemetryPolicy }[] = [];
  for (const r of resources) {
    if (r.body.kind !== 'Telemetry') continue;
    out.push({ createdAt: r.body.spec.createdAt, p: { namespace: r.key.namespace, name: r.key.name, ...r.body.spec.policy } as TelemetryPolicy });
  }
  out.sort((a, b) => a.createdAt - b.createdAt || a.p.namespace.localeCompare(b.p.namespace) || a.p.name.localeCompare(b.p.name));
  return out.map((x) => x.p);
}
