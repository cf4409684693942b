// What the agent's identity manager needs of the CA, without gRPC: the signer it is given
// and the error a refused or failed request rejects with. ca-client.ts implements it over
// CertificateService; it is its own module so that the identity manager (on the node proxy's
// serving path) does not load gRPC and the protos before the proxy accepts.
import type { status as GrpcStatus } from '@grpc/grpc-js';
import { NodemeshError } from '../../common/errors.js';

export interface CertificateSigner {
  /** The chain (leaf first) for `identity` over the CSR's key; rejects with CertificateRequestError. */
  createCertificate(req: { csrPem: string; identity: string; validitySeconds: number }): Promise<string[]>;
  close(): void;
}

/**
 * gRPC codes saying "not allowed" rather than "not reachable" (the codes are the wire's,
 * https://grpc.github.io/grpc/core/md_doc_statuscodes.html): INVALID_ARGUMENT 3,
 * PERMISSION_DENIED 7, UNAUTHENTICATED 16.
 */
const REFUSED = new Set<number>([3, 7, 16]);

/** A refused or failed certificate request, with the gRPC status code it ended with. */
export class CertificateRequestError extends NodemeshError {
  readonly grpcCode: GrpcStatus;
  constructor(grpcCode: GrpcStatus, message: string, cause?: unknown) {
    super('NM_ERR_IDENTITY', message, cause === undefined ? undefined : { cause });
    this.name = 'CertificateRequestError';
    this.grpcCode = grpcCode;
  }

  /** the CA said no (as opposed to: it could not be reached or failed) */
  get refused(): boolean {
    return REFUSED.has(this.grpcCode);
  }
}
