// SPIFFE IDs and X.509-SVIDs, read and checked the same way by the CA (control/), the
// agent's identity manager and the HBONE peers: parse a SPIFFE ID, read a certificate's
// URI SANs and constraints from its DER, validate a leaf as an SVID, verify a chain
// against the trust bundle.
//
// Specs: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md and
// .../standards/X509-SVID.md (quoted where implemented).
import { X509Certificate, createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type forgeTypes from 'node-forge';
import { NodemeshError } from '../../common/errors.js';

// Only forge's ASN.1 reader and its byte buffers (5 modules), not its index (42: TLS, RSA,
// PKCS#12…, ~50 ms of CPU): the HBONE peers check an SVID on every handshake, and a restarted
// agent must not load all of forge before it can (ARCHITECTURE.md, "Start-up order").
const require = createRequire(import.meta.url);
const asn1 = require('node-forge/lib/asn1') as typeof forgeTypes.asn1;
const util = require('node-forge/lib/util') as typeof forgeTypes.util;
type Asn1 = forgeTypes.asn1.Asn1;

const OID_SAN = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
export const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** GeneralName tags (RFC 5280 4.2.1.6): dNSName [2], uniformResourceIdentifier [6], iPAddress [7] */
const SAN_DNS = 2;
const SAN_URI = 6;

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PATH_SEGMENT = /^[a-zA-Z0-9._-]+$/;

export interface SpiffeId {
  trustDomain: string;
  /** `/ns/x/sa/y` */
  path: string;
}

export interface WorkloadSpiffeId extends SpiffeId {
  namespace: string;
  serviceAccount: string;
}

function idError(id: string, why: string): NodemeshError {
  return new NodemeshError('NM_ERR_IDENTITY', `${JSON.stringify(id.length > 100 ? `${id.slice(0, 100)}…` : id)} is not a valid SPIFFE ID: ${why}`);
}

/**
 * "Valid SPIFFE IDs MUST use the `spiffe` scheme, include a non-zero trust domain name, and
 * MUST NOT include a query or fragment component." Trust domain: lowercase letters, digits,
 * '.', '-', '_'; path segments: letters, digits, '.', '-', '_', no empty, '.' or '..'
 * segment, no trailing '/'; "SHOULD NOT generate URIs of length greater than 2048 bytes".
 */
export function parseSpiffeId(id: string): SpiffeId {
  if (Buffer.byteLength(id) > 2048) throw idError(id, 'longer than 2048 bytes');
  if (!id.startsWith('spiffe://')) throw idError(id, "the scheme must be 'spiffe://'");
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (!trustDomain) throw idError(id, 'the trust domain is empty');
  if (!TRUST_DOMAIN.test(trustDomain)) throw idError(id, "the trust domain may hold only lowercase letters, digits, '.', '-' and '_' (no port, no user info)");
  if (path) {
    const segments = path.slice(1).split('/');
    for (const s of segments) {
      if (s === '') throw idError(id, 'the path has an empty segment or a trailing /');
      if (s === '.' || s === '..') throw idError(id, "the path has a '.' or '..' segment");
      if (!PATH_SEGMENT.test(s)) throw idError(id, `path segment ${JSON.stringify(s)} may hold only letters, digits, '.', '-' and '_' (no query or fragment)`);
    }
  }
  return { trustDomain, path };
}

/** A workload identity, `spiffe://<td>/ns/<namespace>/sa/<service account>`; with `trustDomain`, it must be that one. */
export function parseWorkloadSpiffeId(id: string, trustDomain?: string): WorkloadSpiffeId {
  const p = parseSpiffeId(id);
  const m = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(p.path);
  if (!m) throw idError(id, 'a workload identity has the form spiffe://<trust domain>/ns/<namespace>/sa/<service account>');
  if (trustDomain !== undefined && p.trustDomain !== trustDomain) throw idError(id, `the trust domain is ${p.trustDomain}, this mesh's is ${trustDomain}`);
  return { ...p, namespace: m[1]!, serviceAccount: m[2]! };
}

/** Every `-----BEGIN CERTIFICATE-----` block of a PEM text, in order. */
export function splitPemCertificates(pem: string): string[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((c) => `${c}\n`);
}

function toDer(cert: string | Buffer): Buffer {
  if (Buffer.isBuffer(cert)) return cert;
  return new X509Certificate(cert).raw;
}

export interface CertificateFacts {
  der: Buffer;
  uris: string[];
  dnsNames: string[];
  /** basicConstraints cA (false when the extension is absent) */
  ca: boolean;
  /** keyUsage bits by name; undefined when the extension is absent */
  keyUsage: Set<string> | undefined;
  keyUsageCritical: boolean;
  /** extended key usage OIDs (empty when absent) */
  extKeyUsage: string[];
  sanCritical: boolean;
  subjectEmpty: boolean;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, hex */
  fingerprint: string;
}

const KEY_USAGE_BITS = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'];

/** What the SVID rules look at, read from the certificate's DER (PEM or DER in). */
export function certificateFacts(cert: string | Buffer): CertificateFacts {
  const der = toDer(cert);
  const x = new X509Certificate(der);
  const root = asn1.fromDer(util.createBuffer(der.toString('binary')));
  const tbs = (root.value as Asn1[])[0]!.value as Asn1[];
  // tbsCertificate: [0] version, serial, sigAlg, issuer, validity, subject, spki, [1]/[2] uids, [3] extensions
  const offset = tbs[0]!.tagClass === asn1.Class.CONTEXT_SPECIFIC ? 1 : 0;
  const subject = tbs[offset + 4]!;
  const extWrapper = tbs.find((e) => e.tagClass === asn1.Class.CONTEXT_SPECIFIC && e.type === 3);
  const facts: CertificateFacts = {
    der,
    uris: [],
    dnsNames: [],
    ca: false,
    keyUsage: undefined,
    keyUsageCritical: false,
    extKeyUsage: [],
    sanCritical: false,
    subjectEmpty: (subject.value as Asn1[]).length === 0,
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    fingerprint: createHash('sha256').update(der).digest('hex'),
  };
  const exts = extWrapper ? ((extWrapper.value as Asn1[])[0]!.value as Asn1[]) : [];
  for (const ext of exts) {
    const parts = ext.value as Asn1[];
    const oid = asn1.derToOid(parts[0]!.value as string);
    const critical = parts.length === 3 && (parts[1]!.value as string) !== '\x00';
    const inner = fromDerRaw(parts[parts.length - 1]!.value as string);
    if (oid === OID_SAN) {
      facts.sanCritical = critical;
      for (const gn of inner.value as Asn1[]) {
        if (gn.tagClass !== asn1.Class.CONTEXT_SPECIFIC) continue;
        if (gn.type === SAN_URI) facts.uris.push(gn.value as string);
        else if (gn.type === SAN_DNS) facts.dnsNames.push(gn.value as string);
      }
    } else if (oid === OID_BASIC_CONSTRAINTS) {
      const seq = inner.value as Asn1[];
      facts.ca = seq.length > 0 && seq[0]!.type === asn1.Type.BOOLEAN && (seq[0]!.value as string) !== '\x00';
    } else if (oid === OID_KEY_USAGE) {
      facts.keyUsageCritical = critical;
      const bits = inner.value as string; // first byte: unused bit count
      const set = new Set<string>();
      for (let i = 0; i < KEY_USAGE_BITS.length; i++) {
        const byte = bits.charCodeAt(1 + (i >> 3));
        if (!Number.isNaN(byte) && byte & (0x80 >> (i & 7))) set.add(KEY_USAGE_BITS[i]!);
      }
      facts.keyUsage = set;
    } else if (oid === OID_EXT_KEY_USAGE) {
      facts.extKeyUsage = (inner.value as Asn1[]).map((o) => asn1.derToOid(o.value as string));
    }
  }
  return facts;
}

// forge tries to decode BIT STRING contents as nested ASN.1 unless told not to (its types omit the option)
const fromDerRaw = (bytes: string): Asn1 =>
  (asn1.fromDer as unknown as (b: string, o: { decodeBitStrings: boolean }) => Asn1)(bytes, { decodeBitStrings: false });

/** The URI SANs of a certificate (PEM or DER). */
export function uriSans(cert: string | Buffer): string[] {
  return certificateFacts(cert).uris;
}

/**
 * Checks a leaf as an X.509-SVID and returns its SPIFFE ID. X509-SVID 5.2: "the validator
 * MUST ensure that the `CA` field in the basic constraints extension is set to `false`, and
 * that `keyCertSign` and `cRLSign` are not set in the key usage extension. The validator
 * MUST also ensure that the scheme of the SPIFFE ID is set to `spiffe`, and MUST ensure that
 * the SPIFFE ID has a non-root path component. SVIDs containing more than one URI SAN MUST
 * be rejected."
 */
export function svidSpiffeId(leaf: string | Buffer): string {
  const f = certificateFacts(leaf);
  if (f.uris.length !== 1) {
    throw new NodemeshError('NM_ERR_IDENTITY', `not an X.509-SVID: it carries ${f.uris.length} URI SANs (${f.uris.join(', ') || 'none'}); an SVID carries exactly one`);
  }
  if (f.ca) throw new NodemeshError('NM_ERR_IDENTITY', 'not an X.509-SVID leaf: basicConstraints says cA=true');
  if (f.keyUsage?.has('keyCertSign') || f.keyUsage?.has('cRLSign')) {
    throw new NodemeshError('NM_ERR_IDENTITY', 'not an X.509-SVID leaf: keyUsage sets keyCertSign or cRLSign');
  }
  const id = f.uris[0]!;
  if (!parseSpiffeId(id).path) throw new NodemeshError('NM_ERR_IDENTITY', `not an X.509-SVID leaf: SPIFFE ID ${id} has no path`);
  return id;
}

/**
 * RFC 5280 path building, simplified to what the mesh needs: from the leaf, each certificate
 * must be within its validity at `now` and be issued (name and signature) by the next one
 * or by a root of `roots`; every issuer must be a CA. Returns the root it chains to; throws
 * NM_ERR_IDENTITY naming the first link that fails.
 */
export function verifyChain(chain: readonly string[], roots: readonly string[], now: number): string {
  if (chain.length === 0) throw new NodemeshError('NM_ERR_IDENTITY', 'empty certificate chain');
  if (roots.length === 0) throw new NodemeshError('NM_ERR_IDENTITY', 'no trust bundle to verify the chain against');
  const anchors = roots.map((pem) => ({ pem, x: new X509Certificate(pem) }));
  const links = chain.map((pem) => new X509Certificate(pem));
  const at = new Date(now);
  for (let i = 0; i < links.length && i < 8; i++) {
    const c = links[i]!;
    if (new Date(c.validFrom) > at || new Date(c.validTo) < at) {
      throw new NodemeshError('NM_ERR_IDENTITY', `chain[${i}] (${c.subject.replace(/\n/g, ', ') || 'empty subject'}) is not valid at ${at.toISOString()} (valid ${c.validFrom} – ${c.validTo})`);
    }
    const same = anchors.find((a) => a.x.fingerprint256 === c.fingerprint256);
    if (same) return same.pem;
    const root = anchors.find((a) => a.x.ca && c.checkIssued(a.x) && c.verify(a.x.publicKey));
    if (root) {
      if (new Date(root.x.validTo) < at) throw new NodemeshError('NM_ERR_IDENTITY', `the root that issued chain[${i}] expired at ${root.x.validTo}`);
      return root.pem;
    }
    const next = links[i + 1];
    if (!next) break;
    if (!next.ca || !c.checkIssued(next) || !c.verify(next.publicKey)) {
      throw new NodemeshError('NM_ERR_IDENTITY', `chain[${i}] is not issued by chain[${i + 1}] (a CA certificate that signed it)`);
    }
  }
  throw new NodemeshError('NM_ERR_IDENTITY', 'the certificate chain does not lead to a root of the trust bundle');
}
