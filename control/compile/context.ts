// What the per-concern compilers (routing, security) get besides the resources: the
// workloads and services already compiled, and mesh-wide settings.
import type { Service, Workload } from '../api/snapshot.js';

/** Istio's default root namespace: mesh-wide policies (e.g. a PeerAuthentication) live there. */
export const ROOT_NAMESPACE_DEFAULT = 'istio-system';

export interface CompileContext {
  workloads: readonly Workload[];
  services: readonly Service[];
  trustDomain: string;
  rootNamespace: string;
  /** the mesh's trust domain then its aliases (trust-domains.ts); empty without aliases */
  trustDomains?: readonly string[];
}
