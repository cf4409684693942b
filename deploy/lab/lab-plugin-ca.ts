// The shared root of trust of a two-cluster lab, made as an operator makes Istio's plug-in
// CA (istio/tools/certs: one root, one intermediate per cluster, with openssl):
//   <dir>/root-cert.pem, root-key.pem          the root (kept by the operator, offline)
//   <dir>/<cluster>/ca-cert.pem, ca-key.pem     the cluster's intermediate and its key
//   <dir>/<cluster>/cert-chain.pem              what lies above it: the root
// Each control plane signs with its cluster's intermediate (`--ca-cert/--ca-key/--ca-chain`,
// the `cacerts` Secret on Kubernetes) and serves the root as its trust bundle, so an SVID of
// one cluster verifies in the other. Under the lab's state dir: `lab down` removes it.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from './lab-processes.js';

export interface PluginCaFiles {
  cert: string;
  key: string;
  chain: string;
}

export function pluginCaFiles(dir: string, cluster: string): PluginCaFiles {
  const d = path.join(dir, cluster);
  return { cert: path.join(d, 'ca-cert.pem'), key: path.join(d, 'ca-key.pem'), chain: path.join(d, 'cert-chain.pem') };
}

export async function writePluginCa(dir: string, clusters: string[], trustDomain = 'cluster.local'): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const f = (n: string) => path.join(dir, n);
  const ext = f('ca.ext');
  await writeFile(ext, `basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nsubjectAltName=URI:spiffe://${trustDomain}\n`);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('root-key.pem'), '-out', f('root-cert.pem'), '-subj', '/O=nodemesh lab/CN=lab root CA', '-days', '30',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  for (const c of clusters) {
    const files = pluginCaFiles(dir, c);
    await mkdir(path.dirname(files.cert), { recursive: true, mode: 0o700 });
    const csr = path.join(path.dirname(files.cert), 'ca.csr');
    await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', files.key, '-out', csr, '-subj', `/O=nodemesh lab/CN=intermediate CA ${c}`]);
    await run('openssl', ['x509', '-req', '-in', csr, '-CA', f('root-cert.pem'), '-CAkey', f('root-key.pem'), '-set_serial', `0x${Buffer.from(c).toString('hex').slice(0, 30)}01`, '-out', files.cert, '-days', '30', '-extfile', ext]);
    await run('cp', [f('root-cert.pem'), files.chain]);
  }
}
