// The CA's root on Kubernetes, kept in Secrets of the control plane's namespace, never on a
// volume of one replica — as istiod keeps it:
// - `cacerts`, the operator's plug-in CA, in Istio's layout (ca-cert.pem, ca-key.pem,
//   cert-chain.pem, root-cert.pem): when it exists, every replica signs with it. A `cacerts`
//   that is incomplete or does not verify is an error, never a reason to fall back to a
//   self-signed root (agents would be handed a root nobody meant to trust).
// - otherwise `nodemesh-ca-secret` (istiod's `istio-ca-secret`: ca-cert.pem, ca-key.pem,
//   type istio.io/ca-root): a self-signed root created once, by the leader only
//   (create-if-absent: a 409 AlreadyExists means another replica won, and its root is read
//   back). The other replicas wait for it, so every replica signs under the same root and
//   a certificate from any of them chains to it.
// The root is read at start; replacing a Secret's keys takes effect as the replicas restart.
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { systemClock, type Clock } from '../../common/clock.js';
import { splitPemCertificates } from '../api/x509-svid.js';
import { KubeApiError, resourcePath, type KubeClient } from '../kube/kube-client.js';
import type { CaKeyMaterial } from './ca.js';

const log = logger('control/ca-secret');

export const PLUGIN_CA_SECRET = 'cacerts';
export const SELF_SIGNED_CA_SECRET = 'nodemesh-ca-secret';
/** Istio's keys, in both Secrets */
export const CA_SECRET_KEYS = { caCert: 'ca-cert.pem', caKey: 'ca-key.pem', certChain: 'cert-chain.pem', rootCert: 'root-cert.pem' } as const;
export const CA_SECRET_TYPE = 'istio.io/ca-root';

const SECRETS = { group: '', version: 'v1', plural: 'secrets' } as const;

interface Secret {
  metadata: { name: string; namespace?: string };
  type?: string;
  data?: Record<string, string>;
}

export interface CaSecretOptions {
  client: KubeClient;
  namespace: string;
  /** only the leader creates the self-signed root */
  isLeader: () => boolean;
  /** makes a new self-signed root (ca.ts's generateRootCa) */
  generate: () => Promise<{ certPem: string; keyPem: string }>;
  /** how often a replica that is not the leader looks for the root (default 1 s) */
  pollMs?: number;
  /** how long a replica waits for a root before giving up (default 120 s) */
  timeoutMs?: number;
  clock?: Clock;
}

/** The CA's key material from `cacerts`, else from `nodemesh-ca-secret` (created by the leader if absent). */
export async function loadCaFromSecrets(o: CaSecretOptions): Promise<CaKeyMaterial> {
  // The clock's timers never hold the process, and while a replica waits here for the
  // leader's root nothing else may: its API-server connection idles (unref'd by Node's agent),
  // the Lease timer is the clock's, the gRPC server is not up yet. Node would then end the
  // process with the start-up's await unsettled (exit code 13, seen in CI under load), so the
  // wait holds the event loop itself until it returns or throws.
  const hold = setInterval(() => undefined, 2 ** 30);
  try {
    return await pollCaSecrets(o);
  } finally {
    clearInterval(hold);
  }
}

async function pollCaSecrets(o: CaSecretOptions): Promise<CaKeyMaterial> {
  const clock = o.clock ?? systemClock;
  const deadline = clock.now() + (o.timeoutMs ?? 120_000);
  let waitingLogged = false;
  let lastError: string | undefined;
  for (;;) {
    let plugin: Secret | undefined;
    let own: Secret | undefined;
    try {
      plugin = await o.client.getOptional<Secret>(resourcePath(SECRETS, o.namespace, PLUGIN_CA_SECRET));
      if (!plugin) own = await o.client.getOptional<Secret>(resourcePath(SECRETS, o.namespace, SELF_SIGNED_CA_SECRET));
      lastError = undefined;
    } catch (err) {
      // RBAC says no: waiting will not change it
      if (err instanceof KubeApiError && (err.statusCode === 401 || err.statusCode === 403)) {
        throw new NodemeshError('NM_ERR_CA', `the CA root cannot be read: ${err.message} — the control plane's ServiceAccount needs get and create on secrets in ${o.namespace}`, { cause: err });
      }
      // the API server unreachable or failing: retried until the deadline
      lastError = (err as Error).message;
    }
    if (plugin) return pluginMaterial(plugin, o.namespace);
    if (own) return generatedMaterial(own, o.namespace);
    if (o.isLeader() && lastError === undefined) {
      const root = await o.generate();
      const secret: Secret & { apiVersion: string; kind: string } = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: SELF_SIGNED_CA_SECRET, namespace: o.namespace },
        type: CA_SECRET_TYPE,
        data: { [CA_SECRET_KEYS.caCert]: b64(root.certPem), [CA_SECRET_KEYS.caKey]: b64(root.keyPem) },
      };
      try {
        const made = await o.client.create<Secret>(resourcePath(SECRETS, o.namespace), secret);
        log.info({ secret: `${o.namespace}/${SELF_SIGNED_CA_SECRET}` }, `no Secret ${PLUGIN_CA_SECRET}: generated a self-signed root and stored it in Secret ${SELF_SIGNED_CA_SECRET}`);
        return generatedMaterial(made.data ? made : secret, o.namespace);
      } catch (err) {
        // another replica (a leader before us) stored its root first: read theirs on the next turn
        if (err instanceof KubeApiError && err.statusCode === 409) continue;
        if (err instanceof KubeApiError && (err.statusCode === 401 || err.statusCode === 403)) {
          throw new NodemeshError('NM_ERR_CA', `the CA root cannot be stored: ${err.message} — the control plane's ServiceAccount needs create on secrets in ${o.namespace}`, { cause: err });
        }
        lastError = (err as Error).message;
      }
    }
    if (clock.now() >= deadline) {
      throw new NodemeshError(
        'NM_ERR_CA',
        `no CA root after ${Math.round((o.timeoutMs ?? 120_000) / 1000)} s${lastError ? ` (last error: ${lastError})` : ''}: neither Secret ${o.namespace}/${PLUGIN_CA_SECRET} (the operator's plug-in CA) nor ${o.namespace}/${SELF_SIGNED_CA_SECRET} exists, and no leader created one — check the Lease ${o.namespace}/nodemesh-control and that the control plane may get and create Secrets there`,
      );
    }
    if (!waitingLogged) {
      waitingLogged = true;
      log.info({ namespace: o.namespace }, `no CA root yet: waiting for the leader to create Secret ${SELF_SIGNED_CA_SECRET}`);
    }
    await new Promise<void>((r) => clock.setTimeout(r, o.pollMs ?? 1000));
  }
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

function field(s: Secret, key: string, namespace: string, required: boolean): string {
  const v = s.data?.[key];
  if (v === undefined || v === '') {
    if (!required) return '';
    throw new NodemeshError('NM_ERR_CA', `Secret ${namespace}/${s.metadata.name} has no ${key}: the plug-in CA needs ${CA_SECRET_KEYS.caCert}, ${CA_SECRET_KEYS.caKey}, ${CA_SECRET_KEYS.certChain} and ${CA_SECRET_KEYS.rootCert} (Istio's layout)`);
  }
  return Buffer.from(v, 'base64').toString('utf8');
}

function generatedMaterial(s: Secret, namespace: string): CaKeyMaterial {
  return { certPem: field(s, CA_SECRET_KEYS.caCert, namespace, true), keyPem: field(s, CA_SECRET_KEYS.caKey, namespace, true), chainPem: '', what: `Secret ${namespace}/${s.metadata.name}`, mode: 'generated' };
}

/**
 * Istio's plug-in layout: ca-cert.pem signs; cert-chain.pem is ca-cert.pem followed by its
 * intermediates and the root (Istio's Makefiles `cat ca-cert.pem root-cert.pem`); root-cert.pem
 * the root. The chain handed to the signer is what lies above ca-cert.pem, ending at the root.
 */
export function pluginMaterial(s: Secret, namespace: string): CaKeyMaterial {
  const certPem = field(s, CA_SECRET_KEYS.caCert, namespace, true);
  const keyPem = field(s, CA_SECRET_KEYS.caKey, namespace, true);
  const rootPem = field(s, CA_SECRET_KEYS.rootCert, namespace, true);
  const chainPem = field(s, CA_SECRET_KEYS.certChain, namespace, false);
  const norm = (p: string) => p.replace(/\s+/g, '');
  const signing = splitPemCertificates(certPem)[0] ?? '';
  const above = splitPemCertificates(chainPem).filter((c) => norm(c) !== norm(signing));
  const roots = splitPemCertificates(rootPem);
  const last = roots[roots.length - 1];
  // a root used directly signs alone; otherwise the chain must end at the root
  if (last && norm(last) !== norm(signing) && !above.some((c) => norm(c) === norm(last))) above.push(last);
  return { certPem: signing, keyPem, chainPem: above.join('\n'), what: `Secret ${namespace}/${s.metadata.name}`, mode: 'operator' };
}

/** Where agents read the roots they verify the control plane with (the DaemonSet mounts it as --root-cert). */
export const ROOT_CONFIGMAP = 'nodemesh-root';
export const ROOT_CONFIGMAP_KEY = 'root-cert.pem';
const CONFIGMAPS = { group: '', version: 'v1', plural: 'configmaps' } as const;

/**
 * Publishes the trust bundle in ConfigMap `nodemesh-root` (as istiod publishes
 * `istio-ca-root-cert`): created if absent, replaced only when its content differs. The
 * leader calls it; a 409 (another writer between our read and write) is retried on the next call.
 */
export async function publishTrustBundle(client: KubeClient, namespace: string, roots: readonly string[]): Promise<'unchanged' | 'written'> {
  const pem = roots.map((r) => r.trimEnd() + '\n').join('');
  const path = resourcePath(CONFIGMAPS, namespace, ROOT_CONFIGMAP);
  const have = await client.getOptional<{ metadata: { resourceVersion?: string }; data?: Record<string, string> }>(path);
  if (have?.data?.[ROOT_CONFIGMAP_KEY] === pem) return 'unchanged';
  const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: ROOT_CONFIGMAP, namespace, ...(have ? { resourceVersion: have.metadata.resourceVersion } : {}) }, data: { ...(have?.data ?? {}), [ROOT_CONFIGMAP_KEY]: pem } };
  if (have) await client.replace(path, body);
  else await client.create(resourcePath(CONFIGMAPS, namespace), body);
  log.info({ configMap: `${namespace}/${ROOT_CONFIGMAP}`, roots: roots.length }, 'trust bundle published');
  return 'written';
}
