// `nodemesh create-remote-secret --name CLUSTER`: what `istioctl create-remote-secret` prints,
// for nodemesh. It reads the cluster the kubeconfig points at (the one to be read by other
// control planes) and prints a Secret to apply in each *other* cluster's nodemesh-system:
// labelled istio/multiCluster=true, one data key (the cluster's name) holding a kubeconfig
// with that cluster's server, its CA and the token of the reader ServiceAccount.
//
// - The reader is `nodemesh-reader` in nodemesh-system, with the read-only RBAC of
//   deploy/kubernetes/remote-reader/ (list/watch of Namespaces, Nodes, Pods, Services and
//   EndpointSlices, nothing else). Its token is the long-lived one of the Secret
//   `nodemesh-reader-token` (type kubernetes.io/service-account-token) that manifest creates,
//   as istioctl uses istio-reader-service-account's: a remote secret must outlive any
//   projected token. Revoke it by deleting that Secret (the token controller recreates none).
// - `--server URL` replaces the kubeconfig's server address (the address other clusters reach
//   the API server at, when the local kubeconfig says 127.0.0.1 or an internal name).
// - The CA is the token Secret's ca.crt (the cluster's own), else the kubeconfig's.
// - Nothing is written to any cluster: the output goes to stdout, for `kubectl apply -f -`.
import { stringify } from 'yaml';
import { NodemeshError } from '../common/errors.js';
import { CLUSTER_NAME, NETWORK_NAME } from '../control/api/snapshot.js';
import { KubeApiError, KubeClient, loadKubeConfig, CONTROL_NAMESPACE_DEFAULT } from '../control/kube/kube-client.js';
import { CLUSTER_ANNOTATION, MULTI_CLUSTER_LABEL, SECRET_NETWORK_ANNOTATION } from '../control/kube/remote-secrets.js';

export const READER_SERVICE_ACCOUNT = 'nodemesh-reader';
export const READER_TOKEN_SECRET = 'nodemesh-reader-token';

export interface CreateRemoteSecretOptions {
  /** the cluster's name: the data key, and its cluster ID in every other control plane */
  name: string;
  kubeconfig?: string;
  /** the API server address other clusters use (default: the kubeconfig's) */
  server?: string;
  /** where the reader lives in this cluster, and where the Secret goes in the others (default nodemesh-system) */
  namespace?: string;
  /** the cluster's network, when its nodemesh-system namespace is not labelled topology.istio.io/network */
  network?: string;
}

/** The remote secret's YAML for the cluster the kubeconfig points at. */
export async function createRemoteSecret(o: CreateRemoteSecretOptions): Promise<string> {
  if (!CLUSTER_NAME.test(o.name)) throw new NodemeshError('NM_ERR_KUBE', `--name ${JSON.stringify(o.name)}: a cluster name is up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`);
  if (o.network !== undefined && !NETWORK_NAME.test(o.network)) throw new NodemeshError('NM_ERR_KUBE', `--network ${JSON.stringify(o.network)}: not a label value`);
  const namespace = o.namespace ?? CONTROL_NAMESPACE_DEFAULT;
  const { kc, describe } = loadKubeConfig(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {});
  const client = new KubeClient(kc);
  let secret: { type?: string; data?: Record<string, string> };
  try {
    secret = await client.get(`/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${READER_TOKEN_SECRET}`);
  } catch (err) {
    if (err instanceof KubeApiError && err.statusCode === 404)
      throw new NodemeshError('NM_ERR_KUBE', `${describe}: no Secret ${namespace}/${READER_TOKEN_SECRET}: apply the reader first (kubectl apply -k deploy/kubernetes/remote-reader) to this cluster`);
    throw new NodemeshError('NM_ERR_KUBE', `${describe}: reading Secret ${namespace}/${READER_TOKEN_SECRET}: ${(err as Error).message}`, { cause: err });
  }
  const token = secret.data?.token ? Buffer.from(secret.data.token, 'base64').toString('utf8') : '';
  if (!token)
    throw new NodemeshError('NM_ERR_KUBE', `${describe}: Secret ${namespace}/${READER_TOKEN_SECRET} holds no token yet (the token controller fills a kubernetes.io/service-account-token Secret within seconds; try again)`);
  const server = (o.server ?? client.server).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new NodemeshError('NM_ERR_KUBE', `--server ${JSON.stringify(server)}: not a URL`);
  }
  if (url.protocol !== 'https:') throw new NodemeshError('NM_ERR_KUBE', `--server ${server}: a remote cluster is read over https only`);
  const caData = secret.data?.['ca.crt'] ?? kc.getCurrentCluster()?.caData ?? '';
  if (!caData) throw new NodemeshError('NM_ERR_KUBE', `${describe}: no CA for ${server} (neither the token Secret's ca.crt nor the kubeconfig's certificate-authority-data)`);
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: o.name, cluster: { server, 'certificate-authority-data': caData } }],
    users: [{ name: o.name, user: { token } }],
    contexts: [{ name: o.name, context: { cluster: o.name, user: o.name } }],
    'current-context': o.name,
    preferences: {},
  };
  const doc = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: `istio-remote-secret-${o.name.toLowerCase()}`,
      namespace,
      labels: { [MULTI_CLUSTER_LABEL]: 'true' },
      annotations: { [CLUSTER_ANNOTATION]: o.name, ...(o.network ? { [SECRET_NETWORK_ANNOTATION]: o.network } : {}) },
    },
    stringData: { [o.name]: stringify(kubeconfig) },
  };
  return `# This file is generated by nodemesh create-remote-secret: apply it to every other cluster of the mesh\n# (kubectl apply -f -); it grants read access to cluster ${o.name}'s workloads, keep it secret.\n---\n${stringify(doc)}`;
}
