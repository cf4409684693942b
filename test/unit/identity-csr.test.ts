// The workload CSR built with node:crypto (agent/identity/csr.ts) is the CSR node-forge built
// before it, byte for byte, and openssl reads it as a signed request for the SPIFFE ID.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { buildCsr } from '../../agent/identity/csr.js';

function forgeCsr(keyPem: string, spiffeId: string): string {
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] }] }]);
  csr.sign(key, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

const keyPem = () =>
  generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;

test('the CSR is the one node-forge built for the same key and SPIFFE ID, for short and long IDs', (t) => {
  const ids = ['spiffe://cluster.local/ns/a/sa/b', `spiffe://cluster.local/ns/${'n'.repeat(63)}/sa/${'s'.repeat(200)}`];
  for (const id of ids) {
    const key = keyPem();
    t.is(buildCsr(key, id), forgeCsr(key, id), id.slice(0, 40));
  }
});

test('openssl verifies the CSR signature and reads the SPIFFE ID as its one URI SAN', (t) => {
  const id = 'spiffe://cluster.local/ns/shop/sa/web';
  const text = execFileSync('openssl', ['req', '-verify', '-noout', '-text'], {
    input: buildCsr(keyPem(), id),
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  t.regex(text, /Subject Alternative Name:\s*\n\s*URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web\s*\n/);
  t.regex(text, /Public-Key: \(2048 bit\)/);
  t.regex(text, /Signature Algorithm: sha256WithRSAEncryption/);
});
