// PeerAuthentication at the destination: which mTLS mode applies to a connection for a
// local workload's port. The control plane has already resolved Istio's precedence
// (workload > namespace > mesh, UNSET inherits, PERMISSIVE by default, port-level
// overrides); here it is a lookup.
//
// What each mode means at the node proxy's inbound:
// - STRICT: only mTLS (HBONE from another node proxy, which proves the source workload's
//   identity); plaintext that reaches the pod's port is refused;
// - PERMISSIVE: both; plaintext is authorized like any connection (with no principal) and
//   reported with connection_security_policy="none";
// - DISABLE: treated as PERMISSIVE, as Istio ambient's ztunnel does: the node proxies'
//   tunnel is the mesh's transport, so mTLS from a node proxy is still accepted.
import type { MtlsMode } from '../../control/api/snapshot-security.js';
import type { WorkloadPolicy } from './authorization.js';

/** The mode for a connection to `port` of the workload. */
export function mtlsModeFor(policy: Pick<WorkloadPolicy, 'mtlsMode' | 'portMtls'>, port: number): MtlsMode {
  return policy.portMtls.get(port) ?? policy.mtlsMode;
}

/** Whether plaintext (no mTLS) may reach this port of the workload. */
export function acceptsPlaintext(policy: Pick<WorkloadPolicy, 'mtlsMode' | 'portMtls'>, port: number): boolean {
  return mtlsModeFor(policy, port) !== 'STRICT';
}
