// The control plane highly available on Kubernetes (issue 9): two replicas, each a whole
// control plane with real gRPC/TLS, against the stand-in API server. They elect one leader
// on the Lease nodemesh-control; the CA root is in a Secret (the operator's `cacerts`, else
// `nodemesh-ca-secret`, created once by the leader), so every replica signs under the same
// root; an agent given both addresses (the agent's own clients: ControlPlaneCredentials with
// its projected token, the snapshot watch, the CA client) keeps being served when the
// leader dies.
import test, { type ExecutionContext } from 'ava';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { createCertificateClient } from '../../control/api/ca-client.js';
import { ControlPlaneCredentials } from '../../control/api/control-credentials.js';
import { watchSnapshots } from '../../control/api/discovery-client.js';
import { svidSpiffeId } from '../../control/api/x509-svid.js';
import { CA_SECRET_KEYS, PLUGIN_CA_SECRET, ROOT_CONFIGMAP, ROOT_CONFIGMAP_KEY, SELF_SIGNED_CA_SECRET } from '../../control/ca/ca-secret.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../control/control-plane.js';
import { KubeApiServerStandIn } from '../helpers/kube-apiserver.js';
import { csr } from '../helpers/csr.js';
import { eventually } from '../helpers/eventually.js';

const NS = 'nodemesh-system';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const AGENT_SA = 'system:serviceaccount:nodemesh-system:nodemesh-agent';
// short leases so that a takeover takes seconds (the defaults are client-go's 15 s / 10 s / 2 s)
const FAST_LEASE = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 400 };

interface Cluster {
  api: KubeApiServerStandIn;
  dir: string;
  replica: (name: string, o?: { releaseOnStop?: boolean }) => Promise<ControlPlane>;
}

async function cluster(t: ExecutionContext): Promise<Cluster> {
  const api = await KubeApiServerStandIn.start();
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-control-ha-'));
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  const agent = api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'nodemesh-agent-a', namespace: NS }, spec: { nodeName: 'node-a', serviceAccountName: 'nodemesh-agent', containers: [{ name: 'agent' }] }, status: { phase: 'Running', podIP: '172.18.0.2' } });
  api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'shop' }, spec: { nodeName: 'node-a', serviceAccountName: 'web', containers: [{ name: 'web' }] }, status: { phase: 'Running', podIP: '10.244.1.2' } });
  api.addToken('token-a', { username: AGENT_SA, audiences: ['nodemesh'], expiresAt: Date.now() + 3600_000, pod: { name: 'nodemesh-agent-a', uid: agent.metadata.uid! } });
  const kubeconfig = api.writeKubeconfig(dir);
  return {
    api,
    dir,
    replica: async (name, o = {}) => {
      const opts: ControlPlaneOptions = {
        grpcAddress: '127.0.0.1:0',
        adminAddress: '127.0.0.1:0',
        processMetrics: false,
        kubernetes: { kubeconfig, coalesceMs: 5, leaderElection: { ...FAST_LEASE, identity: name, ...o }, caWaitMs: 30_000 },
        ca: { tokenAuth: {} },
      };
      const cp = await startControlPlane(opts);
      t.teardown(() => cp.close());
      return cp;
    },
  };
}

/** The trust bundle as an agent gets it: ConfigMap nodemesh-root, mounted as --root-cert. */
async function rootCertFile(c: Cluster): Promise<string> {
  const cm = await eventually(() => c.api.get('ConfigMap', NS, ROOT_CONFIGMAP), 20_000, 'ConfigMap nodemesh-root');
  const file = path.join(c.dir, 'root-cert.pem');
  await writeFile(file, (cm.data as Record<string, string>)[ROOT_CONFIGMAP_KEY]!);
  return file;
}

function chainsTo(chain: string[], rootPem: string): boolean {
  const root = new X509Certificate(rootPem);
  let below = new X509Certificate(chain[0]!);
  for (const pem of chain.slice(1)) {
    const up = new X509Certificate(pem);
    if (!below.verify(up.publicKey)) return false;
    below = up;
  }
  return below.verify(root.publicKey) || below.fingerprint256 === root.fingerprint256;
}

function secretText(api: KubeApiServerStandIn, name: string, key: string): string | undefined {
  const v = (api.get('Secret', NS, name)?.data as Record<string, string> | undefined)?.[key];
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
}

test('without cacerts, the leader creates one self-signed root in Secret nodemesh-ca-secret; both replicas sign under it', async (t) => {
  const c = await cluster(t);
  const [a, b] = await Promise.all([c.replica('replica-a'), c.replica('replica-b')]);
  t.is([a, b].filter((cp) => cp.isLeader()).length, 1);
  const rootPem = secretText(c.api, SELF_SIGNED_CA_SECRET, CA_SECRET_KEYS.caCert)!;
  t.truthy(rootPem);
  t.is(c.api.get('Secret', NS, SELF_SIGNED_CA_SECRET)!.type, 'istio.io/ca-root');
  t.is(c.api.requests.filter((r) => r === `POST /api/v1/namespaces/${NS}/secrets`).length, 1, 'the root is created once');
  for (const cp of [a, b]) t.deepEqual(cp.ca!.trustBundle().map((p) => p.trim()), [rootPem.trim()]);
  t.deepEqual(a.ca!.status().mode, 'generated');

  const rootFile = await rootCertFile(c);
  const tokenFile = path.join(c.dir, 'token');
  await writeFile(tokenFile, 'token-a');
  for (const cp of [a, b]) {
    const creds = new ControlPlaneCredentials({ rootCertFile: rootFile, tokenFile });
    const client = createCertificateClient({ address: `127.0.0.1:${cp.grpcPort}`, credentials: creds.credentials, timeoutMs: 30_000 });
    t.teardown(() => (client.close(), creds.close()));
    const chain = await client.createCertificate({ csrPem: csr([WEB]), identity: WEB, validitySeconds: 600 });
    t.is(svidSpiffeId(chain[0]!), WEB);
    t.true(chainsTo(chain, rootPem), 'a certificate from either replica chains to the one root');
  }
});

test('with the operator\'s plug-in Secret cacerts (an intermediate under their root), every replica signs with it and no root is generated', async (t) => {
  const c = await cluster(t);
  const { root, intermediate, intermediateKey } = pluginCa();
  c.api.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: PLUGIN_CA_SECRET, namespace: NS },
    data: {
      [CA_SECRET_KEYS.caCert]: b64(intermediate),
      [CA_SECRET_KEYS.caKey]: b64(intermediateKey),
      [CA_SECRET_KEYS.rootCert]: b64(root),
      [CA_SECRET_KEYS.certChain]: b64(intermediate + root),
    },
  });
  const [a, b] = await Promise.all([c.replica('replica-a'), c.replica('replica-b')]);
  t.falsy(c.api.get('Secret', NS, SELF_SIGNED_CA_SECRET));
  for (const cp of [a, b]) {
    t.is(cp.ca!.status().mode, 'operator');
    t.deepEqual(cp.ca!.trustBundle().map((p) => p.trim()), [root.trim()]);
  }
  const rootFile = await rootCertFile(c);
  const tokenFile = path.join(c.dir, 'token');
  await writeFile(tokenFile, 'token-a');
  const creds = new ControlPlaneCredentials({ rootCertFile: rootFile, tokenFile });
  const client = createCertificateClient({ address: `127.0.0.1:${b.grpcPort}`, credentials: creds.credentials, timeoutMs: 30_000 });
  t.teardown(() => (client.close(), creds.close()));
  const chain = await client.createCertificate({ csrPem: csr([WEB]), identity: WEB, validitySeconds: 600 });
  t.is(chain.length, 3, 'leaf, the intermediate, the root');
  t.true(chainsTo(chain, root));
});

test('a cacerts Secret without its key is an error naming the Secret and the key, never a fallback to a self-signed root', async (t) => {
  const c = await cluster(t);
  c.api.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: PLUGIN_CA_SECRET, namespace: NS }, data: { [CA_SECRET_KEYS.caCert]: b64(pluginCa().intermediate) } });
  await t.throwsAsync(c.replica('replica-a'), { message: /Secret nodemesh-system\/cacerts has no ca-key\.pem/ });
  t.falsy(c.api.get('Secret', NS, SELF_SIGNED_CA_SECRET));
});

test('an API server failing while a replica starts is retried: the root is still created once and loaded', async (t) => {
  const c = await cluster(t);
  c.api.failNext = 6; // the first requests (Lease, Secrets, lists) are answered 500
  const a = await c.replica('replica-a');
  t.truthy(secretText(c.api, SELF_SIGNED_CA_SECRET, CA_SECRET_KEYS.caCert));
  t.deepEqual(a.ca!.trustBundle().map((p) => p.trim()), [secretText(c.api, SELF_SIGNED_CA_SECRET, CA_SECRET_KEYS.caCert)!.trim()]);
});

test('two replicas elect one leader; when it dies (stops renewing) the other takes over, and an agent with both addresses is served throughout', async (t) => {
  const c = await cluster(t);
  const a = await c.replica('replica-a', { releaseOnStop: false });
  await eventually(() => a.isLeader(), 20_000, 'replica-a leading');
  const b = await c.replica('replica-b');
  t.false(b.isLeader());
  t.is((await a.metrics.leader.get()).values[0]?.value, 1);
  t.is((await b.metrics.leader.get()).values[0]?.value, 0);

  const rootFile = await rootCertFile(c);
  const tokenFile = path.join(c.dir, 'token');
  await writeFile(tokenFile, 'token-a');
  const creds = new ControlPlaneCredentials({ rootCertFile: rootFile, tokenFile });
  t.teardown(() => creds.close());
  const both = `127.0.0.1:${a.grpcPort},127.0.0.1:${b.grpcPort}`;
  const watch = watchSnapshots({ address: both, node: 'node-a', credentials: creds.credentials, initialBackoffMs: 50, maxBackoffMs: 500, onSnapshot: () => {} });
  const signer = createCertificateClient({ address: both, credentials: creds.credentials, timeoutMs: 30_000 });
  t.teardown(() => (watch.close(), signer.close()));
  await eventually(() => watch.snapshot()?.workloads.some((w) => w.name === 'web-1'), 20_000, 'the agent\'s first snapshot');
  const before = await signer.createCertificate({ csrPem: csr([WEB]), identity: WEB, validitySeconds: 600 });

  await a.close(); // the leader dies: its gRPC port is gone, its Lease is no longer renewed
  await eventually(() => b.isLeader(), 20_000, 'replica-b taking over the Lease');
  t.is((c.api.get('Lease', NS, 'nodemesh-control')!.spec as { holderIdentity: string; leaseTransitions: number }).holderIdentity, 'replica-b');
  t.is((c.api.get('Lease', NS, 'nodemesh-control')!.spec as { leaseTransitions: number }).leaseTransitions, 1);

  // the agent is still served: a pod created after the death reaches it, and it still gets certificates under the same root
  c.api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-2', namespace: 'shop' }, spec: { nodeName: 'node-a', serviceAccountName: 'web', containers: [{ name: 'web' }] }, status: { phase: 'Running', podIP: '10.244.1.3' } });
  await eventually(() => watch.snapshot()?.workloads.some((w) => w.name === 'web-2'), 20_000, 'a snapshot from the surviving replica');
  const after = await signer.createCertificate({ csrPem: csr([WEB]), identity: WEB, validitySeconds: 600 });
  const rootPem = secretText(c.api, SELF_SIGNED_CA_SECRET, CA_SECRET_KEYS.caCert)!;
  t.true(chainsTo(before, rootPem) && chainsTo(after, rootPem));
});

function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}

/** An operator's CA as `istioctl`'s Makefile makes one: a root, and an intermediate it signs (RSA). */
function pluginCa(): { root: string; intermediate: string; intermediateKey: string } {
  const make = (subject: string, issuer: { cert?: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } | undefined, keys: forge.pki.rsa.KeyPair) => {
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = String(Math.floor(Math.random() * 1e9) + 1);
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
    cert.setSubject([{ name: 'organizationName', value: subject }]);
    cert.setIssuer((issuer?.cert ?? cert).subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ]);
    cert.sign(issuer?.key ?? keys.privateKey, forge.md.sha256.create());
    return cert;
  };
  const rsa = (): forge.pki.rsa.KeyPair => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const key = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
    return { privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e) };
  };
  const rootKeys = rsa();
  const root = make('operator root', undefined, rootKeys);
  const intKeys = rsa();
  const intermediate = make('operator intermediate', { cert: root, key: rootKeys.privateKey }, intKeys);
  return { root: forge.pki.certificateToPem(root), intermediate: forge.pki.certificateToPem(intermediate), intermediateKey: forge.pki.privateKeyToPem(intKeys.privateKey) };
}
