// Original file: control/api/ca.proto

import type { Long } from '@grpc/proto-loader';

export interface CreateCertificateRequest {
  /**
   * PEM PKCS#10 CSR. Its public key is certified; its subject is ignored; a URI SAN in it,
   * if any, must equal `identity`.
   */
  'csr'?: (string);
  /**
   * spiffe://<trust domain>/ns/<namespace>/sa/<service account>
   */
  'identity'?: (string);
  /**
   * requested lifetime in seconds; 0: the CA's default (24 h); more than the CA's maximum
   * is refused
   */
  'validitySeconds'?: (number | string | Long);
}

export interface CreateCertificateRequest__Output {
  /**
   * PEM PKCS#10 CSR. Its public key is certified; its subject is ignored; a URI SAN in it,
   * if any, must equal `identity`.
   */
  'csr': (string);
  /**
   * spiffe://<trust domain>/ns/<namespace>/sa/<service account>
   */
  'identity': (string);
  /**
   * requested lifetime in seconds; 0: the CA's default (24 h); more than the CA's maximum
   * is refused
   */
  'validitySeconds': (string);
}
