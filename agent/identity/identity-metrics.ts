// The identity manager's Prometheus metrics, defined in one place; the agent registers them
// in its registry (served on /metrics, port 15020).
import { Counter, Gauge, type Registry } from '../../common/prometheus.js';

export type CertificateRequestKind = 'initial' | 'renewal';
/** success, or why not: refused by the CA, CA unreachable, certificate not the one asked for, other */
export type CertificateRequestResult = 'success' | 'refused' | 'unavailable' | 'invalid_certificate' | 'error';

export interface IdentityMetrics {
  requests: Counter<'kind' | 'result'>;
  expirySeconds: Gauge<'identity'>;
}

/** `expiry` gives, at scrape time, each held identity's seconds until its certificate expires. */
export function createIdentityMetrics(registry: Registry, expiry: () => Map<string, number>): IdentityMetrics {
  return {
    requests: new Counter({
      name: 'nodemesh_identity_certificate_requests_total',
      help: 'Workload certificate requests to the CA: kind initial|renewal, result success|refused|unavailable|invalid_certificate|error',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
    expirySeconds: new Gauge({
      name: 'nodemesh_identity_certificate_expiry_seconds',
      help: 'Seconds until the certificate held for each workload identity expires',
      labelNames: ['identity'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [identity, s] of expiry()) this.set({ identity }, s);
      },
    }),
  };
}
