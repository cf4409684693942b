// A throwaway CA for tests that need real X.509-SVIDs before (or apart from) the control
// plane's CA: RSA keys from node:crypto, certificates built and signed with node-forge.
// FixedIdentityProvider serves the certificates it is given, as an IdentityProvider.
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import type { IdentityProvider, WorkloadCertificate } from '../../agent/identity/identity.js';

const genKeyPair = promisify(generateKeyPair);

async function rsaKey(): Promise<{ keyPem: string; forgeKey: forge.pki.rsa.PrivateKey; forgePub: forge.pki.rsa.PublicKey }> {
  const { privateKey, publicKey } = await genKeyPair('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return {
    keyPem: privateKey,
    forgeKey: forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey,
    forgePub: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
  };
}

function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive
  return b.toString('hex');
}

export interface IssueOptions {
  notBefore?: Date;
  notAfter?: Date;
  /** extra URI SANs (an SVID has exactly one: for negative tests) */
  extraUris?: string[];
}

export class TestCa {
  private constructor(
    readonly certPem: string,
    private readonly cert: forge.pki.Certificate,
    private readonly key: forge.pki.rsa.PrivateKey,
  ) {}

  static async create(name = 'nodemesh test CA'): Promise<TestCa> {
    const k = await rsaKey();
    const cert = forge.pki.createCertificate();
    cert.publicKey = k.forgePub;
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
    const subject = [{ name: 'organizationName', value: name }];
    cert.setSubject(subject);
    cert.setIssuer(subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    cert.sign(k.forgeKey, forge.md.sha256.create());
    return new TestCa(forge.pki.certificateToPem(cert), cert, k.forgeKey);
  }

  /** An X.509-SVID for `spiffeId`: the one URI SAN, not a CA, serverAuth + clientAuth. */
  async issue(spiffeId: string, opts: IssueOptions = {}): Promise<WorkloadCertificate> {
    const k = await rsaKey();
    const cert = forge.pki.createCertificate();
    cert.publicKey = k.forgePub;
    cert.serialNumber = serial();
    const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000);
    const notAfter = opts.notAfter ?? new Date(Date.now() + 3600_000);
    cert.validity.notBefore = notBefore;
    cert.validity.notAfter = notAfter;
    cert.setSubject([{ name: 'organizationName', value: 'cluster.local' }]);
    cert.setIssuer(this.cert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames: [spiffeId, ...(opts.extraUris ?? [])].map((value) => ({ type: 6, value })) },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.cert.generateSubjectKeyIdentifier().getBytes() },
    ]);
    cert.sign(this.key, forge.md.sha256.create());
    return { spiffeId, certChainPem: forge.pki.certificateToPem(cert), keyPem: k.keyPem, notBefore, notAfter };
  }
}

/** Serves the certificates it holds; `certificate()` of any other identity rejects. */
export class FixedIdentityProvider implements IdentityProvider {
  private readonly certs = new Map<string, WorkloadCertificate>();
  readonly requested: string[] = [];

  constructor(
    private bundle: string[],
    certs: WorkloadCertificate[] = [],
  ) {
    for (const c of certs) this.certs.set(c.spiffeId, c);
  }

  set(cert: WorkloadCertificate): void {
    this.certs.set(cert.spiffeId, cert);
  }

  setTrustBundle(bundle: string[]): void {
    this.bundle = bundle;
  }

  async certificate(spiffeId: string): Promise<WorkloadCertificate> {
    this.requested.push(spiffeId);
    const c = this.certs.get(spiffeId);
    if (!c) throw new Error(`no certificate for ${spiffeId} in this test`);
    return c;
  }

  trustBundle(): string[] {
    return this.bundle;
  }
}
