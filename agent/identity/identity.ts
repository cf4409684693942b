// What the proxy needs from workload identity: the certificate of a local
// workload's SPIFFE identity, and the roots the mesh trusts. The identity manager
// (CSR to the control plane's CA, renewal at half-life) implements it; tests may give a
// fixed one.

export interface WorkloadCertificate {
  /** spiffe://<trust domain>/ns/<ns>/sa/<sa> — the one URI SAN of the leaf */
  spiffeId: string;
  /** leaf first, then intermediates (PEM) */
  certChainPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

export interface IdentityProvider {
  /**
   * The current certificate of an identity that has a pod on this node; fetched (and then
   * renewed) on first use. Rejects when the CA refuses or cannot be reached.
   */
  certificate(spiffeId: string): Promise<WorkloadCertificate>;
  /** PEM roots the mesh trusts now (several during a root rotation) */
  trustBundle(): string[];
}
