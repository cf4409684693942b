// Certificates the control plane makes, built and signed with node-forge; keys come from
// node:crypto (forge's pure-JS key generation is far too slow).
//
// node-forge's PKI supports RSA keys only ("The only key algorithm currently supported for
// PKI is RSA", lib/x509.js), so every key the CA signs with or for is RSA 2048: roots,
// workload leaves (the CSR's key must be RSA), the control plane's serving certificate and
// the lab's node credentials.
import { X509Certificate, createPublicKey, generateKeyPair as generateKeyPairCb, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { NodemeshError } from '../../common/errors.js';
import { certificateFacts, splitPemCertificates } from '../api/x509-svid.js';

const generateKeyPair = promisify(generateKeyPairCb);
export const RSA_BITS = 2048;

export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

/** An RSA 2048 key pair from node:crypto (off the event loop), PKCS#8 / SPKI PEM. */
export async function generateRsaKeyPair(): Promise<KeyPairPem> {
  const { privateKey, publicKey } = await generateKeyPair('rsa', {
    modulusLength: RSA_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/**
 * RFC 5280 4.1.2.2: "The serial number MUST be a positive integer assigned by the CA to each
 * certificate ... Conforming CAs MUST NOT use serialNumber values longer than 20 octets."
 * 16 random bytes, first byte in 0x01..0x7f so the DER INTEGER is positive and minimal.
 */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f || 0x01;
  return b.toString('hex');
}

/** What signs: the signing certificate and key, and the chain above it up to the root. */
export interface Signer {
  certPem: string;
  /** certificates above the signing certificate, ending with the root; empty when it is the root */
  chainPems: string[];
  /** the root the chain ends at (the signing certificate itself for a self-signed root) */
  rootPem: string;
  notAfter: Date;
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

function caError(message: string, cause?: unknown): NodemeshError {
  return new NodemeshError('NM_ERR_CA', message, cause === undefined ? undefined : { cause });
}

/**
 * A signer from PEM: the certificate must be a CA with keyCertSign, the key must be its
 * (RSA) key, each chain certificate must issue the one before, and the chain must end at a
 * self-signed root (or be empty: the certificate is the root). `what` names the source in errors.
 */
export function loadSigner(certPem: string, keyPem: string, chainPem: string, what: string): Signer {
  const certs = splitPemCertificates(certPem);
  if (certs.length === 0) throw caError(`${what}: no PEM certificate found`);
  const [signing, ...rest] = certs;
  const chainPems = [...rest, ...splitPemCertificates(chainPem)];
  let x: X509Certificate;
  try {
    x = new X509Certificate(signing!);
  } catch (err) {
    throw caError(`${what}: the certificate cannot be parsed: ${(err as Error).message}`, err);
  }
  const facts = certificateFacts(signing!);
  if (!facts.ca || !facts.keyUsage?.has('keyCertSign')) {
    throw caError(`${what}: the certificate is not a CA certificate (basicConstraints cA=true and keyUsage keyCertSign are required)`);
  }
  let publicOfKey: Buffer;
  try {
    publicOfKey = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  } catch (err) {
    throw caError(`${what}: the private key cannot be read: ${(err as Error).message}`, err);
  }
  if (!publicOfKey.equals(x.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw caError(`${what}: the private key does not belong to the certificate (${x.subject.replace(/\n/g, ', ')})`);
  }
  if (x.publicKey.asymmetricKeyType !== 'rsa') {
    throw caError(`${what}: the CA key is ${x.publicKey.asymmetricKeyType}; node-forge signs with RSA keys only: supply an RSA CA`);
  }
  let below = x;
  for (const [i, pem] of chainPems.entries()) {
    const up = new X509Certificate(pem);
    if (!below.checkIssued(up) || !below.verify(up.publicKey)) throw caError(`${what}: chain certificate ${i + 1} did not issue the certificate below it`);
    below = up;
  }
  if (!below.checkIssued(below) || !below.verify(below.publicKey)) {
    throw caError(`${what}: the chain does not end at a self-signed root: append the intermediates and the root (--ca-chain)`);
  }
  return {
    certPem: signing!,
    chainPems,
    rootPem: chainPems.length ? chainPems[chainPems.length - 1]! : signing!,
    notAfter: new Date(x.validTo),
    cert: forge.pki.certificateFromPem(signing!),
    key: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey,
  };
}

export interface NameAttribute {
  shortName: 'CN' | 'O' | 'OU';
  value: string;
}

export interface SelfSignedCaSpec {
  keyPem: string;
  subject: NameAttribute[];
  /** SPIFFE X509-SVID 3.2: "A signing certificate SHOULD itself be an SVID ... MUST NOT have a path component" */
  trustDomain?: string;
  notBefore: Date;
  notAfter: Date;
}

/** A self-signed root: cA=true (critical), keyUsage keyCertSign+cRLSign (critical), SKI. */
export function selfSignedCa(spec: SelfSignedCaSpec): string {
  const key = forge.pki.privateKeyFromPem(spec.keyPem) as forge.pki.rsa.PrivateKey;
  const c = forge.pki.createCertificate();
  c.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  c.serialNumber = randomSerial();
  c.validity.notBefore = spec.notBefore;
  c.validity.notAfter = spec.notAfter;
  c.setSubject(spec.subject);
  c.setIssuer(spec.subject);
  const exts: object[] = [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (spec.trustDomain) exts.push({ name: 'subjectAltName', altNames: [{ type: 6, value: `spiffe://${spec.trustDomain}` }] });
  c.setExtensions(exts);
  c.sign(key, forge.md.sha256.create());
  return forge.pki.certificateToPem(c);
}

export type ExtendedKeyUsage = 'serverAuth' | 'clientAuth';

export interface LeafSpec {
  /** SPKI PEM, or a forge public key (from a CSR) */
  publicKey: string | forge.pki.PublicKey;
  /** empty: no subject (then the SAN extension is critical) */
  subject: NameAttribute[];
  uris?: string[];
  dnsNames?: string[];
  ips?: string[];
  extKeyUsage: ExtendedKeyUsage[];
  notBefore: Date;
  notAfter: Date;
}

/**
 * An end-entity certificate signed by `signer`: basicConstraints cA=false (critical),
 * keyUsage digitalSignature+keyEncipherment (critical), the EKUs asked for, SANs, AKI.
 * X509-SVID 3.1: "The Subject field is not required, however the URI SAN extension MUST be
 * marked as critical if Subject is omitted". notAfter is clamped to the signer's.
 */
export function signLeaf(signer: Signer, spec: LeafSpec): string {
  const c = forge.pki.createCertificate();
  c.publicKey = typeof spec.publicKey === 'string' ? forge.pki.publicKeyFromPem(spec.publicKey) : spec.publicKey;
  c.serialNumber = randomSerial();
  c.validity.notBefore = spec.notBefore;
  c.validity.notAfter = spec.notAfter > signer.notAfter ? signer.notAfter : spec.notAfter;
  c.setSubject(spec.subject);
  c.setIssuer(signer.cert.subject.attributes);
  const altNames = [
    ...(spec.uris ?? []).map((value) => ({ type: 6, value })),
    ...(spec.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(spec.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  const ski = signer.cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  const exts: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: spec.extKeyUsage.includes('serverAuth'), clientAuth: spec.extKeyUsage.includes('clientAuth') },
    {
      name: 'authorityKeyIdentifier',
      keyIdentifier: ski?.subjectKeyIdentifier ? forge.util.hexToBytes(ski.subjectKeyIdentifier) : signer.cert.generateSubjectKeyIdentifier().getBytes(),
    },
  ];
  if (altNames.length) exts.push({ name: 'subjectAltName', altNames, critical: spec.subject.length === 0 });
  c.setExtensions(exts);
  c.sign(signer.key, forge.md.sha256.create());
  return forge.pki.certificateToPem(c);
}

export interface ParsedCsr {
  publicKey: forge.pki.PublicKey;
  /** the URI SANs the CSR asks for (extensionRequest), usually the one SPIFFE ID */
  uris: string[];
}

/**
 * A PKCS#10 CSR, checked: parseable, RSA of at least 2048 bits, and its signature verifies
 * with its own key (the caller holds the private key). Throws NM_ERR_IDENTITY saying why.
 */
export function parseCsr(csrPem: string): ParsedCsr {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (err) {
    const why = /not RSA/i.test((err as Error).message) ? 'its key is not RSA (this CA signs RSA keys only)' : (err as Error).message;
    throw new NodemeshError('NM_ERR_IDENTITY', `the CSR cannot be read: ${why}`, { cause: err });
  }
  const key = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!key) throw new NodemeshError('NM_ERR_IDENTITY', 'the CSR has no public key');
  if (key.n.bitLength() < RSA_BITS) throw new NodemeshError('NM_ERR_IDENTITY', `the CSR's RSA key has ${key.n.bitLength()} bits; at least ${RSA_BITS} are required`);
  let verified = false;
  try {
    verified = csr.verify();
  } catch {
    verified = false;
  }
  if (!verified) throw new NodemeshError('NM_ERR_IDENTITY', "the CSR's signature does not verify with its own key");
  const uris: string[] = [];
  const req = csr.getAttribute({ name: 'extensionRequest' }) as { extensions?: { name?: string; altNames?: { type: number; value: string }[] }[] } | null;
  for (const e of req?.extensions ?? []) {
    if (e.name === 'subjectAltName') for (const n of e.altNames ?? []) if (n.type === 6) uris.push(n.value);
  }
  return { publicKey: key, uris };
}
