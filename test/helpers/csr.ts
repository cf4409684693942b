// Certificate signing requests as a workload sends them: a fresh RSA key and a PKCS#10
// request signed with it. Built with node-forge, not with the agent's own code, so that the
// CA is checked against a client it does not share code with.
import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';

/** A CSR and its private key (PEM); `uris` are its URI SANs (none: no SAN extension). */
export function csrWithKey(uris: string[]): { csrPem: string; keyPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const key = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  const r = forge.pki.createCertificationRequest();
  r.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  if (uris.length) {
    r.setAttributes([
      { name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: uris.map((value) => ({ type: 6, value })) }] },
    ]);
  }
  r.sign(key, forge.md.sha256.create());
  return { csrPem: forge.pki.certificationRequestToPem(r), keyPem: privateKey };
}

/** A CSR (PEM) over a fresh key with `uris` as its URI SANs. */
export function csr(uris: string[]): string {
  return csrWithKey(uris).csrPem;
}
