// nodemesh.v1.CertificateService/CreateCertificate, served on the discovery port: authenticate
// the caller as a node, authorize the identity for that node, sign. Every refusal is a gRPC
// error with a status that says which (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT,
// UNAVAILABLE), a message naming node, identity and why, a log line and a count in
// nodemesh_ca_requests_refused_total{reason}; nothing a caller sends can crash the server.
import * as grpc from '@grpc/grpc-js';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import type { CreateCertificateRequestWire, CreateCertificateResponseWire } from '../api/ca-client.js';
import type { CertificateAuthority } from './ca.js';
import type { CaMetrics } from './metrics.js';
import { Refusal, type Caller, type NodeAuthenticator, type SnapshotNodeAuthorizer } from './node-auth.js';

const log = logger('control/ca-server');

/** CSRs are a few KB; anything much larger is not one */
const MAX_CSR_BYTES = 64 * 1024;

export interface CertificateServiceOptions {
  ca: CertificateAuthority;
  authenticator: NodeAuthenticator;
  authorizer: Pick<SnapshotNodeAuthorizer, 'authorize'>;
  metrics: CaMetrics;
}

type Call = grpc.ServerUnaryCall<CreateCertificateRequestWire, CreateCertificateResponseWire>;

export function certificateServiceImplementation(opts: CertificateServiceOptions): grpc.UntypedServiceImplementation {
  return {
    async createCertificate(call: Call, callback: grpc.sendUnaryData<CreateCertificateResponseWire>) {
      let node = '';
      let caller: Caller | undefined;
      const identity = typeof call.request?.identity === 'string' ? call.request.identity : '';
      opts.metrics.csrCount.inc();
      try {
        caller = await opts.authenticator.authenticate(call);
        node = caller.node;
        const { csr, validity } = checkRequest(call.request);
        opts.authorizer.authorize(caller, identity);
        let chain: string[];
        try {
          chain = opts.ca.signWorkload({ csrPem: csr, spiffeId: identity, ttlSeconds: validity });
        } catch (err) {
          if (err instanceof NodemeshError && err.code === 'NM_ERR_IDENTITY') throw new Refusal('invalid_argument', err.message);
          throw err;
        }
        opts.metrics.issued.inc();
        opts.metrics.successIssuance.inc();
        log.info({ node, ...(caller.workload ? { workload: `${caller.workload.namespace}/${caller.workload.pod}` } : {}), identity, validitySeconds: validity || 'default' }, 'certificate issued');
        callback(null, { certChain: chain });
      } catch (err) {
        const r = err instanceof Refusal ? err : new Refusal('internal', `the CA failed to sign: ${(err as Error).message}`);
        opts.metrics.refused.inc({ reason: r.reason });
        if (r.reason === 'internal') log.error({ err, node, identity }, 'certificate request failed');
        else log.warn({ node: node || undefined, identity, peer: call.getPeer(), reason: r.reason }, r.message);
        callback({ code: r.grpcCode, details: r.message });
      }
    },
  };
}

function checkRequest(req: CreateCertificateRequestWire | undefined): { csr: string; validity: number } {
  if (!req || typeof req.csr !== 'string' || req.csr === '') throw new Refusal('invalid_argument', 'the request carries no CSR (field csr: a PEM PKCS#10 request)');
  if (req.csr.length > MAX_CSR_BYTES) throw new Refusal('invalid_argument', `the CSR is ${req.csr.length} bytes; a CSR is a few KB`);
  if (typeof req.identity !== 'string' || req.identity === '') throw new Refusal('invalid_argument', 'the request names no identity (field identity: spiffe://<trust domain>/ns/<ns>/sa/<sa>)');
  const validity = Number(req.validitySeconds ?? 0);
  if (!Number.isSafeInteger(validity) || validity < 0) throw new Refusal('invalid_argument', `validity_seconds ${req.validitySeconds} is not a whole number of seconds >= 0`);
  return { csr: req.csr, validity };
}
