// The lab's identity material, all under the lab's state dir (so `lab down` removes it with
// the dir):
//   ca/                      the control plane's --ca-dir: its root is generated there on
//                            first start; ca/trust-bundle.pem is each agent's --root-cert
//                            (the control plane keeps it current, as the ConfigMap Istio
//                            agents mount)
//   node-ca/                 the lab's node CA (a stand-in for the cluster CA that signs
//                            kubelet client certificates), the control plane's --node-ca
//   node-credentials/<node>/ each node's credential (O=system:nodes, CN=system:node:<node>),
//                            its agent's --node-credential
import path from 'node:path';
import { CA_FILES } from '../../control/ca/store.js';
import { createNodeCa, issueNodeCredential, NODE_CA_FILES } from '../../control/ca/node-credentials.js';
import type { LabState } from './lab-state.js';

export function labCaDir(stateDir: string): string {
  return path.join(stateDir, 'ca');
}

export function labTrustBundleFile(stateDir: string): string {
  return path.join(labCaDir(stateDir), CA_FILES.trustBundle);
}

export function labNodeCaFile(stateDir: string): string {
  return path.join(stateDir, 'node-ca', NODE_CA_FILES.cert);
}

export function labNodeCredentialDir(stateDir: string, node: string): string {
  return path.join(stateDir, 'node-credentials', node);
}

/** The node CA and one credential per node (before the control plane and agents start). */
export async function writeLabCredentials(state: LabState): Promise<void> {
  const nodeCa = await createNodeCa(path.dirname(labNodeCaFile(state.stateDir)));
  await Promise.all(state.nodes.map((n) => issueNodeCredential(nodeCa, n.name, labNodeCredentialDir(state.stateDir, n.name))));
}
