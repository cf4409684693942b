// Node credentials: how a node agent proves which node it runs on, in the lab. Modelled on
// Kubernetes' node client certificates ("nodes use a credential that identifies them as
// being in the system:nodes group, with a username of system:node:<nodeName>", Node
// authorization docs): subject O=system:nodes, CN=system:node:<node>, clientAuth only,
// issued by a node CA of their own that is NOT the mesh root. So a workload SVID can never
// pass for a node credential (it does not chain to the node CA), and a root rotation of
// the mesh never locks the agents out of the control plane.
//
// On Kubernetes the agent will authenticate with its projected service-account token
// instead (a NodeAuthenticator of its own, node-auth.ts); these files are the lab's.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { NODE_CREDENTIAL_FILES } from '../api/control-credentials.js';
import { NodemeshError } from '../../common/errors.js';
import { generateRsaKeyPair, loadSigner, selfSignedCa, signLeaf } from './certificates.js';
import { writeFileAtomic } from './store.js';

export const NODE_GROUP = 'system:nodes';
export const NODE_USER_PREFIX = 'system:node:';
export { NODE_CREDENTIAL_FILES };
/** files of a node CA directory */
export const NODE_CA_FILES = { cert: 'ca-cert.pem', key: 'ca-key.pem' } as const;

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface NodeCa {
  certPem: string;
  keyPem: string;
}

/** Makes a node CA and writes it to `dir` (0700; key 0600). */
export async function createNodeCa(dir: string, opts: { now?: number; ttlMs?: number } = {}): Promise<NodeCa> {
  const now = opts.now ?? Date.now();
  const { privateKeyPem } = await generateRsaKeyPair();
  const certPem = selfSignedCa({
    keyPem: privateKeyPem,
    subject: [
      { shortName: 'O', value: 'nodemesh' },
      { shortName: 'CN', value: 'nodemesh node credentials CA' },
    ],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (opts.ttlMs ?? 365 * 24 * 3600_000)),
  });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path.join(dir, NODE_CA_FILES.key), privateKeyPem, 0o600);
  await writeFileAtomic(path.join(dir, NODE_CA_FILES.cert), certPem, 0o644);
  return { certPem, keyPem: privateKeyPem };
}

/** Issues the credential of node `node` into `outDir` (cert.pem 0644, key.pem 0600). */
export async function issueNodeCredential(ca: NodeCa, node: string, outDir: string, opts: { now?: number; ttlMs?: number } = {}): Promise<void> {
  if (!DNS1123_SUBDOMAIN.test(node) || node.length > 253) {
    throw new NodemeshError('NM_ERR_CA', `node name ${JSON.stringify(node)} is not a DNS-1123 subdomain: a node credential names a Kubernetes node`);
  }
  const now = opts.now ?? Date.now();
  const signer = loadSigner(ca.certPem, ca.keyPem, '', 'node CA');
  const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
  const certPem = signLeaf(signer, {
    publicKey: publicKeyPem,
    subject: [
      { shortName: 'O', value: NODE_GROUP },
      { shortName: 'CN', value: `${NODE_USER_PREFIX}${node}` },
    ],
    extKeyUsage: ['clientAuth'],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (opts.ttlMs ?? 365 * 24 * 3600_000)),
  });
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path.join(outDir, NODE_CREDENTIAL_FILES.key), privateKeyPem, 0o600);
  await writeFileAtomic(path.join(outDir, NODE_CREDENTIAL_FILES.cert), certPem, 0o644);
}
