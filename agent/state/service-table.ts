// The agent's view of a snapshot, indexed for the connection path: what a ClusterIP:port
// resolves to, and which workload owns an IP. Rebuilt whole on every snapshot (cheap at
// these sizes) and swapped atomically, so a connection never sees half an update.
import type { Endpoint, Service, ServicePort, Snapshot, Workload } from '../../control/api/snapshot.js';

export interface ServiceTarget {
  service: Service;
  port: ServicePort;
  /** round-robin cursor, kept per service port across connections */
  next: number;
}

export class ServiceTable {
  readonly version: number;
  /** the snapshot this table indexes (the L7 engine builds its routing index from it) */
  readonly snapshot: Snapshot | undefined;
  private readonly byVip = new Map<string, ServiceTarget>();
  private readonly byIp = new Map<string, Workload>();

  constructor(snapshot: Snapshot | undefined, previous?: ServiceTable) {
    this.version = snapshot?.version ?? 0;
    this.snapshot = snapshot;
    if (!snapshot) return;
    for (const w of snapshot.workloads) this.byIp.set(w.ip, w);
    for (const service of snapshot.services) {
      if (!service.clusterIp) continue; // headless: nothing to capture
      for (const port of service.ports) {
        if (port.protocol && port.protocol !== 'TCP') continue;
        const key = vipKey(service.clusterIp, port.port);
        // keep the cursor so a config push does not reset the rotation
        const next = previous?.byVip.get(key)?.next ?? 0;
        this.byVip.set(key, { service, port, next });
      }
    }
  }

  /** The Service port a connection to ip:port was meant for, if that is a ClusterIP. */
  service(ip: string, port: number): ServiceTarget | undefined {
    return this.byVip.get(vipKey(ip, port));
  }

  workloadByIp(ip: string): Workload | undefined {
    return this.byIp.get(ip);
  }
}

/** Round-robin over the port's endpoints (the thin default; issue 4 adds the others). */
export function pickRoundRobin(target: ServiceTarget): Endpoint | undefined {
  const eps = target.port.endpoints;
  if (eps.length === 0) return undefined;
  const ep = eps[target.next % eps.length];
  target.next = (target.next + 1) % eps.length;
  return ep;
}

function vipKey(ip: string, port: number): string {
  return `${ip}:${port}`;
}
