// Istio's remote secrets (issue 13): a control plane on Kubernetes watches the Secrets of its
// own namespace labelled `istio/multiCluster: "true"`. Each data key of such a Secret is a
// remote cluster's name (its cluster ID) and its value a kubeconfig for that cluster's API
// server, as `istioctl create-remote-secret` (and `nodemesh create-remote-secret`) write them.
//
// This file only reads the Secrets and says what they ask for: the clusters (name, kubeconfig,
// where it came from) and what is wrong with them (a key that is no cluster name, a value that
// is no kubeconfig, a name given twice or naming this cluster). remote-clusters.ts starts,
// replaces and stops a read-only Kubernetes source per cluster from that.
//
// - A name in two Secrets: the first Secret by name keeps it (Istio keeps the cluster it has
//   and refuses the newcomer); the other is an error naming both.
// - The network: Istio carries none in the Secret; it reads the remote cluster's own system
//   namespace label `topology.istio.io/network` (remote-clusters.ts does). A Secret may
//   override it with the annotation `nodemesh.io/network` (nodemesh's: for a cluster whose
//   system namespace one may not label).
// - A Secret's data is base64 on the wire (`stringData` is folded into `data` by the API
//   server): decoded here, never logged.
import { KubeConfig } from '@kubernetes/client-node';
import { logger } from '../../common/log.js';
import { CLUSTER_NAME, NETWORK_NAME } from '../api/snapshot.js';
import { Informer, type ResourceType } from './informer.js';
import type { KubeClient } from './kube-client.js';
import type { Backoff } from '../../common/backoff.js';

const log = logger('control/remote-secrets');

/** The label that makes a Secret a remote secret (Istio's). */
export const MULTI_CLUSTER_LABEL = 'istio/multiCluster';
/** Istio's annotation naming the cluster a remote secret is for (informational: the data keys name the clusters). */
export const CLUSTER_ANNOTATION = 'networking.istio.io/cluster';
/** nodemesh's override of a remote cluster's network (else its system namespace's label). */
export const SECRET_NETWORK_ANNOTATION = 'nodemesh.io/network';

const SECRET_TYPE: ResourceType = { group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true };

/** One cluster a remote secret asks for. */
export interface RemoteSecretCluster {
  name: string;
  /** the kubeconfig, as YAML */
  kubeconfig: string;
  /** `Secret ns/name, key K`: what its errors name */
  origin: string;
  /** the Secret's network override, if any */
  network?: string;
}

/** Something wrong with a remote secret: it names the Secret and key. */
export interface RemoteSecretError {
  secret: string;
  key: string;
  message: string;
}

export interface RemoteSecretsOptions {
  client: KubeClient;
  namespace: string;
  /** this cluster's name: a key naming it is refused */
  localCluster: string;
  /** names already taken by `--remote-cluster` directories */
  reserved?: readonly string[];
  /** every time the set of Secrets changed (after the first list): what they ask for now */
  onChange: (clusters: RemoteSecretCluster[], errors: RemoteSecretError[]) => void;
  backoff?: Backoff;
  watchTimeoutSeconds?: [number, number];
  onCount?: (what: 'list' | 'relist' | 'watch' | 'error' | 'absent') => void;
}

interface SecretObject {
  metadata?: { name?: string; namespace?: string; annotations?: Record<string, string> };
  data?: Record<string, string>;
}

export class RemoteSecrets {
  private readonly informer: Informer;
  private readonly secrets = new Map<string, SecretObject>();
  private synced = false;
  private readonly listWaiters: (() => void)[] = [];

  constructor(private readonly opts: RemoteSecretsOptions) {
    this.informer = new Informer({
      type: SECRET_TYPE,
      client: opts.client,
      namespace: opts.namespace,
      labelSelector: `${MULTI_CLUSTER_LABEL}=true`,
      onUpsert: (o) => {
        this.secrets.set(o.metadata?.name ?? '', o as SecretObject);
        this.changed();
      },
      onDelete: (o) => {
        if (this.secrets.delete(o.metadata?.name ?? '')) this.changed();
      },
      onSynced: () => {
        this.synced = true;
        this.changed();
        for (const w of this.listWaiters.splice(0)) w();
      },
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
      ...(opts.onCount ? { onCount: opts.onCount } : {}),
    });
  }

  start(): void {
    log.info({ namespace: this.opts.namespace, selector: `${MULTI_CLUSTER_LABEL}=true` }, 'watching remote secrets');
    this.informer.start();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  /** Resolves once the Secrets were listed once and what they ask for was handed to onChange. */
  listed(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((r) => this.listWaiters.push(r));
  }

  /** What the Secrets in hand ask for, and what is wrong with them. */
  read(): { clusters: RemoteSecretCluster[]; errors: RemoteSecretError[] } {
    return readRemoteSecrets([...this.secrets.values()], this.opts.namespace, this.opts.localCluster, this.opts.reserved ?? []);
  }

  private changed(): void {
    if (!this.synced) return;
    const { clusters, errors } = this.read();
    try {
      this.opts.onChange(clusters, errors);
    } catch (err) {
      log.error({ err }, 'applying the remote secrets failed');
    }
  }
}

/** The clusters the Secrets ask for (Secrets in name order, keys in name order) and their errors. */
export function readRemoteSecrets(
  secrets: readonly SecretObject[],
  namespace: string,
  localCluster: string,
  reserved: readonly string[],
): { clusters: RemoteSecretCluster[]; errors: RemoteSecretError[] } {
  const clusters: RemoteSecretCluster[] = [];
  const errors: RemoteSecretError[] = [];
  const owner = new Map<string, string>();
  const sorted = [...secrets].sort((a, b) => ((a.metadata?.name ?? '') < (b.metadata?.name ?? '') ? -1 : 1));
  for (const s of sorted) {
    const secret = `Secret ${s.metadata?.namespace ?? namespace}/${s.metadata?.name ?? ''}`;
    const network = s.metadata?.annotations?.[SECRET_NETWORK_ANNOTATION];
    if (network !== undefined && network !== '' && !NETWORK_NAME.test(network)) {
      errors.push({ secret, key: '', message: `${secret}: annotation ${SECRET_NETWORK_ANNOTATION} ${JSON.stringify(network)} is not a label value; none of its clusters is read` });
      continue;
    }
    const keys = Object.keys(s.data ?? {}).sort();
    if (keys.length === 0) errors.push({ secret, key: '', message: `${secret}: labelled ${MULTI_CLUSTER_LABEL}=true but holds no key (expected one per remote cluster: its name, with a kubeconfig as value)` });
    for (const key of keys) {
      const origin = `${secret}, key ${key}`;
      const fail = (why: string) => errors.push({ secret, key, message: `${origin}: ${why}` });
      if (!CLUSTER_NAME.test(key)) {
        fail('the key is a remote cluster\'s name: expected up to 63 letters, digits, \'-\', \'_\' or \'.\', starting and ending with a letter or digit');
        continue;
      }
      if (key === localCluster) {
        fail(`names this cluster (--cluster ${localCluster}): a remote secret is for another cluster; every cluster of a mesh needs its own name`);
        continue;
      }
      if (reserved.includes(key)) {
        fail(`cluster ${key} is already read from a directory (--remote-cluster); this key is ignored`);
        continue;
      }
      const held = owner.get(key);
      if (held) {
        fail(`cluster ${key} is already read from ${held}; this key is ignored`);
        continue;
      }
      const kubeconfig = Buffer.from(s.data![key]!, 'base64').toString('utf8');
      const bad = checkKubeconfig(kubeconfig);
      if (bad) {
        fail(bad);
        continue;
      }
      owner.set(key, origin);
      clusters.push({ name: key, kubeconfig, origin, ...(network ? { network } : {}) });
    }
  }
  return { clusters, errors };
}

/** Why a kubeconfig cannot be used (undefined: it can): it must parse and name a current cluster with an https server. */
export function checkKubeconfig(text: string): string | undefined {
  const kc = new KubeConfig();
  try {
    kc.loadFromString(text);
  } catch (err) {
    return `the value is not a kubeconfig: ${(err as Error).message}`;
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) return 'the kubeconfig names no current cluster (current-context, and a cluster it points at)';
  let url: URL;
  try {
    url = new URL(cluster.server);
  } catch {
    return `the kubeconfig's server ${JSON.stringify(cluster.server)} is not a URL`;
  }
  if (url.protocol !== 'https:') return `the kubeconfig's server ${cluster.server} is not https: a remote cluster is read over TLS only`;
  if (!kc.getCurrentUser()) return 'the kubeconfig names no user for its current context (a ServiceAccount token is expected)';
  return undefined;
}
