// The CA's Prometheus metrics, defined in one place, registered in the control plane's
// registry (served on /metrics, port 15014).
import { Counter, Gauge, type Registry } from '../../common/prometheus.js';
import type { RefusalReason } from './node-auth.js';

export interface CaMetrics {
  /** workload certificates signed */
  issued: Counter;
  /** Istio's names for the same: citadel_server_csr_count (every CSR received), citadel_server_success_cert_issuance_count */
  csrCount: Counter;
  successIssuance: Counter;
  /** certificate requests refused, by reason (unauthenticated, permission_denied, invalid_argument, unavailable, internal) */
  refused: Counter<'reason'>;
  /** discovery streams refused (no valid node credential, or a node other than the credential's) */
  watchRefused: Counter<'reason'>;
  trustBundleRoots: Gauge;
  /** when the certificate the CA signs with expires (Unix seconds) */
  signerExpiry: Gauge;
}

export function createCaMetrics(registry: Registry): CaMetrics {
  return {
    issued: new Counter({
      name: 'nodemesh_ca_certificates_issued_total',
      help: 'Workload certificates (X.509-SVIDs) signed by the CA',
      registers: [registry],
    }),
    csrCount: new Counter({
      name: 'citadel_server_csr_count',
      help: "Certificate signing requests received (Istio's name)",
      registers: [registry],
    }),
    successIssuance: new Counter({
      name: 'citadel_server_success_cert_issuance_count',
      help: "Certificates issued (Istio's name)",
      registers: [registry],
    }),
    refused: new Counter({
      name: 'nodemesh_ca_requests_refused_total',
      help: 'Certificate requests refused, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    watchRefused: new Counter({
      name: 'nodemesh_discovery_streams_refused_total',
      help: 'Discovery streams refused because the caller is not an authenticated node (or not the node it claims)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    trustBundleRoots: new Gauge({
      name: 'nodemesh_ca_trust_bundle_roots',
      help: 'Roots in the trust bundle (2 during a root rotation overlap)',
      registers: [registry],
    }),
    signerExpiry: new Gauge({
      name: 'nodemesh_ca_signer_expiry_timestamp_seconds',
      help: 'When the certificate the CA signs with expires (Unix seconds)',
      registers: [registry],
    }),
  };
}

export type { RefusalReason };
