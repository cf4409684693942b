// A workload's certificate signing request (PKCS#10, RFC 2986) in DER built by hand and
// signed with node:crypto: an empty subject, the key's SubjectPublicKeyInfo, and one
// extensionRequest attribute holding the subjectAltName with the SPIFFE ID as its one URI —
// byte for byte what node-forge produced for the same key (PKCS#1 v1.5 signatures are
// deterministic; the unit test compares the two), without forge's JavaScript RSA: that cost
// ~50 ms of CPU and ~120 KiB of heap high-water per identity, and a node with 200 pods of
// their own ServiceAccounts asks for 200 at start.
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';

/** DER: a tag, its definite length, its contents. */
function der(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const n = body.length;
  const len =
    n < 0x80
      ? Buffer.from([n])
      : n < 0x100
        ? Buffer.from([0x81, n])
        : n < 0x10000
          ? Buffer.from([0x82, n >> 8, n & 0xff])
          : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

/** An OBJECT IDENTIFIER from its dotted form. */
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [a! * 40 + b!];
  for (const v of rest) {
    const base128: number[] = [v & 0x7f];
    for (let x = v >>> 7; x > 0; x >>>= 7) base128.unshift((x & 0x7f) | 0x80);
    bytes.push(...base128);
  }
  return der(0x06, Buffer.from(bytes));
}

const SEQUENCE = 0x30;
const SET = 0x31;
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_SHA256_WITH_RSA = '1.2.840.113549.1.1.11';

/** The CSR (PEM) of an RSA key (PKCS#8 PEM) for one SPIFFE ID. */
export function buildCsr(keyPem: string, spiffeId: string): string {
  const key = createPrivateKey(keyPem);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  // GeneralNames { [6] uniformResourceIdentifier IA5String }
  const san = der(SEQUENCE, der(0x86, Buffer.from(spiffeId, 'ascii')));
  const extensions = der(SEQUENCE, der(SEQUENCE, oid(OID_SUBJECT_ALT_NAME), der(0x04, san)));
  const attributes = der(0xa0, der(SEQUENCE, oid(OID_EXTENSION_REQUEST), der(SET, extensions)));
  const info = der(SEQUENCE, der(0x02, Buffer.from([0])), der(SEQUENCE), spki, attributes);
  const signature = sign('sha256', info, key);
  const csr = der(SEQUENCE, info, der(SEQUENCE, oid(OID_SHA256_WITH_RSA), der(0x05)), der(0x03, Buffer.from([0]), signature));
  const b64 = csr.toString('base64').replace(/.{1,64}/g, '$&\r\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\r\n${b64}-----END CERTIFICATE REQUEST-----\r\n`;
}
