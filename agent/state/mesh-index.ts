// What the HBONE paths look up in a snapshot, indexed once per snapshot (the snapshot
// object is immutable once applied): which workload owns an IP, where a node's proxy
// listens, and which Service a workload's port serves (for destination-side telemetry).
import type { Service, Snapshot, Workload } from '../../control/api/snapshot.js';

export interface MeshIndex {
  workloadByIp(ip: string): Workload | undefined;
  /** the address of a node's proxy, if the snapshot has one */
  nodeIp(node: string): string | undefined;
  /** a Service that has `uid`'s `port` as an endpoint (the first by namespace/name) */
  serviceFor(uid: string, port: number): Service | undefined;
}

const EMPTY: MeshIndex = {
  workloadByIp: () => undefined,
  nodeIp: () => undefined,
  serviceFor: () => undefined,
};

const cache = new WeakMap<Snapshot, MeshIndex>();

export function meshIndex(snapshot: Snapshot | undefined): MeshIndex {
  if (!snapshot) return EMPTY;
  let idx = cache.get(snapshot);
  if (idx) return idx;
  const byIp = new Map<string, Workload>();
  for (const w of snapshot.workloads) byIp.set(w.ip, w);
  const nodes = new Map<string, string>();
  for (const n of snapshot.nodes ?? []) if (n.ip) nodes.set(n.name, n.ip);
  const services = new Map<string, Service>();
  for (const s of snapshot.services) {
    for (const p of s.ports) {
      for (const e of p.endpoints) {
        const k = `${e.workload}:${e.port}`;
        if (!services.has(k)) services.set(k, s);
      }
    }
  }
  idx = {
    workloadByIp: (ip) => byIp.get(ip),
    nodeIp: (node) => nodes.get(node),
    serviceFor: (uid, port) => services.get(`${uid}:${port}`),
  };
  cache.set(snapshot, idx);
  return idx;
}
