// The validated bodies of Istio's security.istio.io kinds nodemesh compiles:
// PeerAuthentication and AuthorizationPolicy. Rules are already in the snapshot's
// normalised shape (control/api/snapshot-security.ts); the compiler only decides which
// workloads each policy applies to and resolves PeerAuthentication precedence.
import type { AuthorizationAction, AuthorizationRule } from '../api/snapshot-security.js';

/** As written; UNSET (or no `mtls`) inherits from the level above. */
export type MtlsModeSpec = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthenticationSpec {
  /** selector.matchLabels; undefined when absent or empty (a mesh/namespace-level policy) */
  selector: Record<string, string> | undefined;
  mode: MtlsModeSpec;
  /** sorted by port */
  portLevelMtls: { port: number; mode: MtlsModeSpec }[];
  /** metadata.creationTimestamp in ms since the epoch; 0 when absent (then it counts as the oldest, as Go's zero time does in Istio) */
  createdAt: number;
}

/** A targetRefs entry; `group` "" is the core group. */
export interface PolicyTargetRef {
  group: string;
  kind: string;
  name: string;
}

export interface AuthorizationPolicySpec {
  /** selector.matchLabels; undefined when there is no selector (an empty one selects every workload of the scope) */
  selector: Record<string, string> | undefined;
  /** targetRef / targetRefs; when set, the policy applies only through them */
  targetRefs: PolicyTargetRef[];
  action: AuthorizationAction;
  dryRun: boolean;
  provider: string;
  rules: AuthorizationRule[];
}
