// `nodemesh control`: the control plane in the foreground until SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { startControlPlane, type ControlPlaneOptions } from '../control/control-plane.js';
import { parseDurationSeconds } from './ca.js';
import { logger } from '../common/log.js';
import { CONTROL_PORTS } from '../common/ports.js';
import type { ConfigLimits } from '../control/model/limits.js';
import { untilSignal } from './signals.js';
import { parseRemoteCluster } from '../control/remote-clusters.js';

export async function runControl(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'config-dir': { type: 'string' },
      source: { type: 'string' },
      kubeconfig: { type: 'string' },
      'agent-service-account': { type: 'string', multiple: true },
      grpc: { type: 'string', default: `0.0.0.0:${CONTROL_PORTS.grpc}` },
      admin: { type: 'string', default: `0.0.0.0:${CONTROL_PORTS.admin}` },
      'trust-domain': { type: 'string', default: 'cluster.local' },
      'trust-domain-alias': { type: 'string', multiple: true },
      cluster: { type: 'string' },
      network: { type: 'string' },
      'remote-cluster': { type: 'string', multiple: true },
      'remote-cluster-timeout': { type: 'string' },
      'ca-dir': { type: 'string' },
      'node-ca': { type: 'string' },
      'ca-cert': { type: 'string' },
      'ca-key': { type: 'string' },
      'ca-chain': { type: 'string' },
      'cert-ttl': { type: 'string' },
      'root-overlap': { type: 'string' },
      'server-name': { type: 'string', multiple: true },
      insecure: { type: 'boolean' },
      'max-file-size': { type: 'string' },
      'max-documents-per-file': { type: 'string' },
      'max-resource-size': { type: 'string' },
      'max-resources': { type: 'string' },
      'max-config-size': { type: 'string' },
    },
  });
  const sourceKind = values.source ?? process.env.NODEMESH_SOURCE ?? 'files';
  if (sourceKind !== 'files' && sourceKind !== 'kubernetes') throw new Error(`control: --source ${JSON.stringify(sourceKind)}: expected files (a directory of YAML, --config-dir) or kubernetes (the API server: in-cluster, or --kubeconfig FILE)`);
  const configDir = values['config-dir'] ?? process.env.NODEMESH_CONFIG_DIR;
  const kubeconfig = values.kubeconfig ?? process.env.NODEMESH_KUBECONFIG;
  if (sourceKind === 'files' && !configDir) throw new Error('control: --config-dir DIR is required (a directory of Kubernetes-shaped YAML), or --source kubernetes');
  if (sourceKind === 'kubernetes' && values['config-dir']) throw new Error('control: --config-dir and --source kubernetes exclude each other (one source of configuration)');
  const opts: ControlPlaneOptions = {
    ...(sourceKind === 'files' ? { configDir: configDir! } : { kubernetes: kubeconfig ? { kubeconfig } : {} }),
    grpcAddress: values.grpc!,
    adminAddress: values.admin!,
    trustDomain: values['trust-domain']!,
    // Istio's MeshConfig trustDomainAliases: principals of either domain match peers of both
    trustDomainAliases: values['trust-domain-alias'] ?? [],
    cluster: values.cluster ?? process.env.NODEMESH_CLUSTER ?? 'Kubernetes',
    network: values.network ?? process.env.NODEMESH_NETWORK ?? '',
    // NAME=DIR[,network=NET]: a remote cluster's YAML (a kubeconfig, Istio's remote secret, later)
    remoteClusters: (values['remote-cluster'] ?? []).map(parseRemoteCluster),
  };
  // istiod's PILOT_REMOTE_CLUSTER_TIMEOUT: how long the first snapshot waits for the remote clusters
  const remoteTimeout = values['remote-cluster-timeout'] ?? process.env.NODEMESH_REMOTE_CLUSTER_TIMEOUT;
  if (remoteTimeout !== undefined) {
    try {
      opts.remoteClusterTimeoutMs = parseDurationSeconds(remoteTimeout) * 1000;
    } catch {
      throw new Error(`control: --remote-cluster-timeout ${JSON.stringify(remoteTimeout)}: expected a duration such as 30s, 2m or 0 (no wait)`);
    }
  }
  const limits: Partial<ConfigLimits> = {};
  const limit = (flag: string, v: string | undefined, k: keyof ConfigLimits, parse: (s: string) => number | undefined) => {
    if (v === undefined) return;
    const n = parse(v);
    if (n === undefined) throw new Error(`control: --${flag} ${JSON.stringify(v)}: expected ${parse === parseSize ? 'a size such as 4Mi, 512Ki or 1048576' : 'a positive whole number'}`);
    limits[k] = n;
  };
  limit('max-file-size', values['max-file-size'], 'fileBytes', parseSize);
  limit('max-documents-per-file', values['max-documents-per-file'], 'documentsPerFile', parseCount);
  limit('max-resource-size', values['max-resource-size'], 'resourceBytes', parseSize);
  limit('max-resources', values['max-resources'], 'resources', parseCount);
  limit('max-config-size', values['max-config-size'], 'totalBytes', parseSize);
  opts.limits = limits;
  if (!values.insecure) {
    const caDir = values['ca-dir'] ?? process.env.NODEMESH_CA_DIR;
    const nodeCa = values['node-ca'] ?? process.env.NODEMESH_NODE_CA;
    // on Kubernetes agents authenticate with their projected ServiceAccount token (TokenReview); --node-ca adds node certificates
    const tokenAuth = sourceKind === 'kubernetes';
    // on Kubernetes the root is kept in a Secret (cacerts, else nodemesh-ca-secret), never in a directory
    const missing = [!caDir && !tokenAuth && '--ca-dir DIR (the CA state: its root is generated there on first start)', !nodeCa && !tokenAuth && '--node-ca FILE (the CA of the node credentials agents present)'].filter(Boolean);
    if (missing.length) throw new Error(`control: missing ${missing.join(', ')} (--insecure: plaintext gRPC, no CA; development only)`);
    if (Boolean(values['ca-cert']) !== Boolean(values['ca-key'])) throw new Error('control: --ca-cert and --ca-key go together (an operator-supplied signing certificate and its key)');
    // with --source kubernetes a --ca-dir receives only the public trust-bundle.pem (the keys stay in the Secret)
    opts.ca = { ...(caDir ? { dir: caDir } : {}), ...(nodeCa ? { nodeCaFile: nodeCa } : {}) };
    if (tokenAuth) opts.ca.tokenAuth = values['agent-service-account'] ? { agentServiceAccounts: values['agent-service-account'] } : {};
    if (values['ca-cert']) opts.ca.operator = { certFile: values['ca-cert'], keyFile: values['ca-key']!, ...(values['ca-chain'] ? { chainFile: values['ca-chain'] } : {}) };
    // env fallbacks, as for the dirs: the lab passes them to its control plane this way
    const certTtl = values['cert-ttl'] ?? process.env.NODEMESH_CERT_TTL;
    const rootOverlap = values['root-overlap'] ?? process.env.NODEMESH_ROOT_OVERLAP;
    if (certTtl) opts.ca.workloadTtlMs = parseDurationSeconds(certTtl) * 1000;
    if (rootOverlap) opts.ca.overlapMs = parseDurationSeconds(rootOverlap) * 1000;
    if (values['server-name']) opts.ca.serverNames = values['server-name'];
  }
  const cp = await startControlPlane(opts);
  logger('control').info({ grpc: values.grpc, admin: values.admin, source: cp.status().configDir }, 'control plane started');
  await untilSignal();
  await cp.close();
  return 0;
}

/** `4Mi`, `512Ki`, `1Gi` (Kubernetes' binary suffixes) or plain bytes. */
export function parseSize(s: string): number | undefined {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(s.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] ?? '']!;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

function parseCount(s: string): number | undefined {
  const n = /^\d+$/.test(s.trim()) ? Number(s) : NaN;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}
