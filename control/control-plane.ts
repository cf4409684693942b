// The control plane: file or Kubernetes source → store (validation, last good) → compiler → gRPC stream,
// plus the admin server. With the Kubernetes source every replica serves; the one holding
// the Lease (kube/leader-election.ts) also creates the CA root (ca/ca-secret.ts), publishes
// the roots and writes status (kube/status-writer.ts). Bad input never stops it: every
// error is logged, counted in nodemesh_config_errors_total and shown in the status, and the
// last good state stays in force.
import { NodemeshError } from '../common/errors.js';
import { logger } from '../common/log.js';
import { settledWithin } from '../common/settled-within.js';
import { splitHostPort } from '../common/host-port.js';
import { CONTROL_PORTS } from '../common/ports.js';
import { CLUSTER_ID_DEFAULT, CLUSTER_NAME, TRUST_DOMAIN_DEFAULT, type Snapshot } from './api/snapshot.js';
import { startAdminServer, type AdminServer } from './admin/admin-server.js';
import { compileSnapshot } from './compile/compiler.js';
import { createControlMetrics, type ControlMetrics } from './control-metrics.js';
import { DiscoveryServer, type AgentStatus } from './discovery-server.js';
import { readFile } from 'node:fs/promises';
import { certificateService } from './api/ca-client.js';
import { splitPemCertificates } from './api/x509-svid.js';
import { systemClock, type Clock } from '../common/clock.js';
import { generateRootCa, startLocalCa, type LocalCa, type LocalCaOptions } from './ca/ca.js';
import { createCaMetrics, type CaMetrics } from './ca/metrics.js';
import { certificateServiceImplementation } from './ca/server.js';
import { NodeCertificateAuthenticator, SnapshotNodeAuthorizer } from './ca/node-auth.js';
import { ServingTls, servingNames } from './ca/serving-tls.js';
import { EitherAuthenticator, TokenReviewAuthenticator, type TokenReviewAuthenticatorOptions } from './ca/token-auth.js';
import { FileSource, type SourceState } from './source/files.js';
import { KubernetesSource, type KubernetesSourceOptions, type KubernetesTypeStatus } from './source/kubernetes.js';
import { CONTROL_NAMESPACE_DEFAULT, KubeClient, loadKubeConfig, type KubeConnectOptions } from './kube/kube-client.js';
import { LeaderElector, type LeaderElectionOptions } from './kube/leader-election.js';
import { loadCaFromSecrets, publishTrustBundle } from './ca/ca-secret.js';
import { StatusWriter } from './kube/status-writer.js';
import { ResourceStore, type ConfigStatus, type StoreResult } from './config-store.js';
import { configLimits, type ConfigLimits } from './model/limits.js';
import { analyze } from './analyze/analyze.js';
import { countLevels, type AnalysisMessage } from './analyze/messages.js';
import { checkRemoteClusters, RemoteClusters, type RemoteClusterOptions, type RemoteClusterStatus, type RemoteKubeSettings } from './remote-clusters.js';
import type { ClusterProblem, RemoteClusterCounts } from './compile/multicluster.js';
import { RemoteSecrets, type RemoteSecretError } from './kube/remote-secrets.js';
import { KUBERNETES_SOURCE_FILE } from './source/kubernetes.js';
import { NETWORK_NAME } from './api/snapshot.js';

const log = logger('control/control-plane');

const DEFAULT_GRPC_ADDRESS = `0.0.0.0:${CONTROL_PORTS.grpc}`;
const DEFAULT_ADMIN_ADDRESS = `0.0.0.0:${CONTROL_PORTS.admin}`;
/** istiod's PILOT_REMOTE_CLUSTER_TIMEOUT */
export const DEFAULT_REMOTE_CLUSTER_TIMEOUT_MS = 30_000;

export interface ControlPlaneOptions {
  /** directory of Kubernetes-shaped YAML, read recursively and watched (the lab, clusters without API access) */
  configDir?: string;
  /** watch the Kubernetes API server instead of a directory (`--source kubernetes`) */
  kubernetes?: KubernetesSourceSettings;
  /** gRPC discovery `host:port` (default 0.0.0.0:15012; port 0 picks a free one) */
  grpcAddress?: string;
  /** admin HTTP `host:port` (default 0.0.0.0:15014; port 0 picks a free one) */
  adminAddress?: string;
  /** SPIFFE trust domain (default cluster.local) */
  trustDomain?: string;
  /**
   * Trust domains that are one with trustDomain (Istio's MeshConfig trustDomainAliases, issue
   * 13): AuthorizationPolicy principals of either match peers of both, and agents take a peer
   * proving the expected path in any of them (compile/trust-domains.ts)
   */
  trustDomainAliases?: string[];
  /** the cluster's name, Istio's cluster ID (default "Kubernetes"): metrics' source_cluster/destination_cluster */
  cluster?: string;
  /** the cluster's network, Istio's topology.istio.io/network (default "": one flat network) */
  network?: string;
  /**
   * Remote clusters discovered from (`--remote-cluster NAME=DIR[,network=NET]`): their pods,
   * Services, Nodes and east-west gateways are merged into the snapshot
   * (compile/multicluster.ts); their policies are not read (remote-clusters.ts)
   */
  remoteClusters?: RemoteClusterOptions[];
  /**
   * At start, how long the first snapshot waits for the remote secrets' first list and for
   * every remote cluster they name to list once (istiod's PILOT_REMOTE_CLUSTER_TIMEOUT,
   * default 30 s; 0: no wait). A cluster not listed by then joins the snapshot when it lists.
   */
  remoteClusterTimeoutMs?: number;
  /** quiet time after a file change before re-reading (default 100 ms) */
  debounceMs?: number;
  /** periodic full rescan, the safety net for missed change events (default 5000 ms) */
  rescanMs?: number;
  /** how much configuration is taken in (model/limits.ts; default DEFAULT_CONFIG_LIMITS) */
  limits?: Partial<ConfigLimits>;
  /** also export Node.js process metrics on /metrics (default true) */
  processMetrics?: boolean;
  /**
   * Run the CA: gRPC becomes TLS (a serving certificate from the CA), agents authenticate
   * with node credentials, CertificateService is served next to discovery, and the trust
   * bundle goes out in every snapshot. Without it gRPC is plaintext and unauthenticated
   * (tests of the configuration pipeline only).
   */
  ca?: ControlPlaneCaOptions;
}

export interface KubernetesSourceSettings extends KubeConnectOptions, Pick<KubernetesSourceOptions, 'coalesceMs' | 'backoff' | 'absentRetryMs' | 'pageSize' | 'watchTimeoutSeconds' | 'types'> {
  /** the control plane's own namespace: its Lease, CA Secrets, root ConfigMap (default: the kubeconfig's, else nodemesh-system) */
  namespace?: string;
  /** Lease timing (client-go's 15 s / 10 s / 2 s by default), identity, release on stop */
  leaderElection?: Pick<LeaderElectionOptions, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs' | 'identity' | 'releaseOnStop' | 'clock'>;
  /** how long a replica waits for the leader to create the CA root (default 120 s) */
  caWaitMs?: number;
  /**
   * Watch the remote secrets of the control plane's namespace (Secrets labelled
   * istio/multiCluster=true: a kubeconfig per remote cluster, kube/remote-secrets.ts); default true
   */
  remoteSecrets?: boolean;
}

export interface ControlPlaneCaOptions extends Omit<LocalCaOptions, 'trustDomain' | 'clock'> {
  /** PEM file of the CA that issues node credentials (the lab's node CA, or the cluster CA for kubelet certificates) */
  nodeCaFile?: string;
  /**
   * With the Kubernetes source: agents may authenticate with their projected ServiceAccount
   * token, reviewed by the API server (ca/token-auth.ts)
   */
  tokenAuth?: Omit<TokenReviewAuthenticatorOptions, 'client'>;
  /** extra DNS names / IPs for the serving certificate (the bind address and defaults are always in) */
  serverNames?: string[];
  clock?: Clock;
}

export interface ControlPlane {
  readonly grpcPort: number;
  readonly adminPort: number;
  readonly metrics: ControlMetrics;
  /** the snapshot in force (undefined until the config directory was read once) */
  snapshot(): Snapshot | undefined;
  status(): ConfigStatus;
  agents(): AgentStatus[];
  ready(): boolean;
  /** the resource types watched and their state, with `--source kubernetes` */
  kubernetesTypes(): KubernetesTypeStatus[] | undefined;
  /** the Kubernetes client, with `--source kubernetes` (status writing, leases, TokenReview use it too) */
  readonly kubeClient: KubeClient | undefined;
  /** with `--source kubernetes`: this replica holds the leader Lease (writes status, creates the CA root) */
  isLeader(): boolean;
  /** the leader elector, with `--source kubernetes` */
  readonly elector: LeaderElector | undefined;
  /** re-reads the directory now (or hands over the cluster's pending changes) and resolves once applied, with the snapshot in force */
  rescan(): Promise<Snapshot | undefined>;
  /** listener for every new snapshot version; returns an unsubscribe function */
  onSnapshot(listener: (snapshot: Snapshot) => void): () => void;
  /** the CA, when started with `ca` */
  readonly ca: LocalCa | undefined;
  readonly caMetrics: CaMetrics | undefined;
  /** the serving certificate chain of the gRPC port (PEM), when TLS */
  servingCertificate(): string | undefined;
  close(): Promise<void>;
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const trustDomain = opts.trustDomain ?? TRUST_DOMAIN_DEFAULT;
  if (!TRUST_DOMAIN.test(trustDomain))
    throw new NodemeshError('NM_ERR_CONTROL', `invalid trust domain ${JSON.stringify(trustDomain)}: expected lowercase letters, digits, '.', '-' or '_'`);
  const trustDomainAliases = opts.trustDomainAliases ?? [];
  for (const a of trustDomainAliases)
    if (!TRUST_DOMAIN.test(a)) throw new NodemeshError('NM_ERR_CONTROL', `invalid trust domain alias ${JSON.stringify(a)}: expected lowercase letters, digits, '.', '-' or '_'`);
  const cluster = opts.cluster ?? CLUSTER_ID_DEFAULT;
  if (!CLUSTER_NAME.test(cluster))
    throw new NodemeshError('NM_ERR_CONTROL', `invalid cluster name ${JSON.stringify(cluster)}: expected up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`);
  const network = opts.network ?? '';
  if (network && !NETWORK_NAME.test(network)) throw new NodemeshError('NM_ERR_CONTROL', `invalid network ${JSON.stringify(network)}: expected a label value (up to 63 letters, digits, '-', '_' or '.')`);
  checkRemoteClusters(opts.remoteClusters ?? [], cluster);
  if (Boolean(opts.configDir) === Boolean(opts.kubernetes)) throw new NodemeshError('NM_ERR_CONTROL', 'the control plane reads one source: a config directory or the Kubernetes API server');
  const metrics = createControlMetrics({ processMetrics: opts.processMetrics ?? true });
  const limits = configLimits(opts.limits);
  const store = new ResourceStore(limits);
  let kubeClient: KubeClient | undefined;
  let kubeDescribe = '';
  if (opts.kubernetes) {
    const { kc, describe } = loadKubeConfig(opts.kubernetes.kubeconfig ? { kubeconfig: opts.kubernetes.kubeconfig } : {});
    kubeClient = new KubeClient(kc, opts.kubernetes.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.kubernetes.requestTimeoutMs } : {});
    kubeDescribe = describe;
  }
  if (opts.ca?.tokenAuth && !kubeClient) throw new NodemeshError('NM_ERR_CONTROL', 'token authentication of agents needs the Kubernetes API server (--source kubernetes)');
  // every replica serves agents; the one holding the Lease also does the singleton work
  // (creates the CA root if none exists, publishes the trust bundle, writes status)
  const controlNamespace = opts.kubernetes?.namespace ?? kubeClient?.namespace(CONTROL_NAMESPACE_DEFAULT) ?? CONTROL_NAMESPACE_DEFAULT;
  let leaderWork = () => {};
  const elector = kubeClient
    ? new LeaderElector({
        ...(opts.kubernetes?.leaderElection ?? {}),
        client: kubeClient,
        namespace: controlNamespace,
        onStartedLeading: () => {
          metrics.leader.set(1);
          leaderWork();
        },
        onStoppedLeading: () => metrics.leader.set(0),
      })
    : undefined;
  elector?.start();
  let tls: Awaited<ReturnType<typeof startCa>> | undefined;
  try {
    const kubeCa = kubeClient && elector ? { client: kubeClient, namespace: controlNamespace, isLeader: () => elector.isLeader(), ...(opts.kubernetes?.caWaitMs !== undefined ? { timeoutMs: opts.kubernetes.caWaitMs } : {}) } : undefined;
    tls = opts.ca ? await startCa(opts.ca, trustDomain, splitHostPort(opts.grpcAddress ?? DEFAULT_GRPC_ADDRESS)[0], metrics.registry, () => current, kubeClient, kubeCa) : undefined;
  } catch (err) {
    await elector?.stop();
    throw err;
  }
  const server = new DiscoveryServer({
    metrics,
    ...(tls
      ? {
          credentials: tls.serving.credentials(),
          // a workload's own token (the east-west gateway's pod) watches as its pod's node, as an agent does
          authenticate: async (call) => (await tls.authenticator.authenticate(call)).node,
          onRefused: (reason) => tls.caMetrics.watchRefused.inc({ reason }),
        }
      : {}),
  });
  if (tls) server.addService(certificateService().service, tls.service);
  const listeners = new Set<(s: Snapshot) => void>();
  let current: Snapshot | undefined;
  let last: StoreResult = { resources: [], statuses: [], fileErrors: [], newErrors: [] };
  // what the last compile found worth telling about accepted resources, for their status
  let compileNotes = new Map<string, string[]>();
  // cross-resource analysis of what is in force (control/analyze/), after each compile
  let analysis: AnalysisMessage[] = [];
  // what the last compile left out of the remote clusters (an address taken…), and what each added
  let clusterProblems: ClusterProblem[] = [];
  let remoteCounts: RemoteClusterCounts[] = [];
  let reportedProblems = new Set<string>();
  const watchSecrets = Boolean(kubeClient && opts.kubernetes?.remoteSecrets !== false);
  const countRemoteError = (remote: string, message: string) => {
    metrics.configErrors.inc({ code: 'NM_ERR_KUBE', kind: 'Secret' });
    log.warn({ code: 'NM_ERR_KUBE', cluster: remote }, message);
  };
  const remotes =
    opts.remoteClusters?.length || watchSecrets
      ? new RemoteClusters(opts.remoteClusters ?? [], {
          limits,
          timing: { ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}), ...(opts.rescanMs !== undefined ? { rescanMs: opts.rescanMs } : {}) },
          kube: pickRemoteKube(opts.kubernetes),
          systemNamespace: controlNamespace,
          onChange: (remote, newErrors) => {
            for (const { error, kind } of newErrors) {
              metrics.configErrors.inc({ code: error.code, kind });
              log.warn({ code: error.code, cluster: remote, ...error.location }, error.message);
            }
            if (current === undefined) return; // the local source's first read compiles
            compile();
          },
          onSourceError: countRemoteError,
        })
      : undefined;
  // the remote secrets' errors in force; each counted once while it lasts
  let secretErrors: RemoteSecretError[] = [];
  const remoteSecrets =
    watchSecrets && kubeClient && remotes
      ? new RemoteSecrets({
          client: kubeClient,
          namespace: controlNamespace,
          localCluster: cluster,
          reserved: remotes.staticNames,
          ...(opts.kubernetes?.backoff ? { backoff: opts.kubernetes.backoff } : {}),
          ...(opts.kubernetes?.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.kubernetes.watchTimeoutSeconds } : {}),
          onCount: (what) => metrics.kubeEvents.inc({ kind: 'Secret', event: what }),
          onChange: (clusters, errors) => {
            const before = new Set(secretErrors.map((e) => e.message));
            for (const e of errors) if (!before.has(e.message)) countRemoteError(e.key, e.message);
            secretErrors = errors;
            // a key whose value went bad keeps the cluster it named (its last good state)
            remotes.reconcile(clusters, errors.map((e) => e.key).filter(Boolean));
            if (current !== undefined) compile();
          },
        })
      : undefined;

  let statusWriter: StatusWriter | undefined;
  const writeStatus = () => {
    if (!statusWriter) return;
    const st = status();
    const findings = new Map<string, AnalysisMessage[]>();
    for (const a of st.analysis ?? []) findings.set(a.resource, [...(findings.get(a.resource) ?? []), a]);
    statusWriter.update(st.resources.map((r) => ({ kind: r.kind, namespace: r.namespace, name: r.name, state: r.state, message: r.message, analysis: findings.get(r.resource) ?? [] })));
  };

  const apply = (state: SourceState) => {
    try {
      last = store.apply(state);
    } catch (err) {
      log.error({ err }, 'applying the configuration failed; the last good state stays in force');
      return;
    }
    for (const { error, kind } of last.newErrors) {
      metrics.configErrors.inc({ code: error.code, kind });
      log.warn({ code: error.code, ...error.location }, error.message);
    }
    // a config directory that could not be listed even once: nothing is known yet, and an
    // empty snapshot would tell every agent that the mesh is empty
    if (state.error && current === undefined) return;
    compile();
    writeStatus();
  };

  // resources or the CA's roots changed: a new snapshot version if the content differs
  const compile = () => {
    let next: Snapshot;
    const notes = new Map<string, string[]>();
    try {
      const problems: ClusterProblem[] = [];
      const counts: RemoteClusterCounts[] = [];
      next = compileSnapshot(
        last.resources,
        {
          trustDomain,
          trustDomainAliases,
          cluster,
          network,
          trustBundle: tls?.ca.trustBundle() ?? [],
          notes,
          endpointsFrom: opts.kubernetes ? 'slices' : 'selectors',
          ...(remotes ? { remotes: remotes.resources(), problems, remoteCounts: counts } : {}),
        },
        current,
      );
      compileNotes = notes;
      clusterProblems = problems;
      remoteCounts = counts;
      // each problem is counted and logged once, while it lasts (as the store's errors)
      const seen = new Set<string>();
      for (const p of problems) {
        if (p.level !== 'error') continue;
        seen.add(p.message);
        if (reportedProblems.has(p.message)) continue;
        metrics.configErrors.inc({ code: p.code, kind: p.kind });
        log.warn({ code: p.code, cluster: p.cluster, file: p.file, line: p.line, resource: p.resource }, p.message);
      }
      reportedProblems = seen;
    } catch (err) {
      log.error({ err }, 'compiling the snapshot failed; the previous snapshot stays in force');
      return;
    }
    try {
      analysis = analyze({ resources: last.resources, services: next.services, documentOf: (r) => store.documentOf(r), statuses: last.statuses, fileErrors: last.fileErrors });
    } catch (err) {
      log.error({ err }, 'analysing the configuration failed; the status shows no analysis');
      analysis = [];
    }
    if (next === current) return;
    current = next;
    metrics.snapshotVersion.set(next.version);
    log.info({ version: next.version, workloads: next.workloads.length, services: next.services.length }, 'new snapshot');
    try {
      server.publish(next);
    } catch (err) {
      log.error({ err, version: next.version }, 'pushing the snapshot to agents failed; they get it on their next connection');
    }
    for (const l of listeners) {
      try {
        l(next);
      } catch (err) {
        log.error({ err }, 'snapshot listener failed');
      }
    }
  };

  let source: FileSource | KubernetesSource;
  if (opts.kubernetes && kubeClient) {
    const { kubeconfig: _k, requestTimeoutMs: _r, ...sourceOpts } = opts.kubernetes;
    source = new KubernetesSource({ ...sourceOpts, client: kubeClient, describe: kubeDescribe, onChange: apply, onCount: (kind, what) => metrics.kubeEvents.inc({ kind, event: what }) });
  } else {
    source = new FileSource({
      dir: opts.configDir!,
      ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
      ...(opts.rescanMs !== undefined ? { rescanMs: opts.rescanMs } : {}),
      onChange: apply,
      limits,
    });
  }

  // the leader writes what the store made of the Istio and Gateway API resources back to their status
  const kubeSource = source instanceof KubernetesSource ? source : undefined;
  statusWriter =
    kubeSource && kubeClient && elector
      ? new StatusWriter({
          client: kubeClient,
          current: (kind, namespace, name) => kubeSource.object(kind, namespace, name),
          isLeader: () => elector.isLeader(),
          onWrite: (kind, result) => metrics.statusWrites.inc({ kind, result }),
        })
      : undefined;

  const status = (): ConfigStatus => {
    const rejected = last.statuses.filter((s) => s.state === 'Rejected').length;
    const resources = last.statuses.map((st) => {
      const extra = st.state === 'Accepted' ? compileNotes.get(st.resource) : undefined;
      return extra?.length ? { ...st, message: [st.message, ...extra].filter(Boolean).join('; ') } : st;
    });
    const fileErrors = [
      ...last.fileErrors,
      ...clusterProblems.filter((p) => p.level === 'error').map((p) => ({ file: p.file, ...(p.line ? { line: p.line } : {}), resource: p.resource, code: p.code, message: p.message })),
    ];
    for (const e of secretErrors) fileErrors.push({ file: KUBERNETES_SOURCE_FILE, resource: e.secret, code: 'NM_ERR_KUBE', message: e.message });
    for (const r of remotes?.status() ?? []) if (r.error) fileErrors.push({ file: KUBERNETES_SOURCE_FILE, resource: r.configDir.split(',')[0]!, code: 'NM_ERR_KUBE', message: r.error });
    const clusterWarnings = clusterProblems.filter((p) => p.level === 'warning').map((p) => ({ cluster: p.cluster, resource: p.resource, file: p.file, ...(p.line ? { line: p.line } : {}), message: p.message }));
    return {
      configDir: source.dir,
      ready: current !== undefined,
      snapshotVersion: current?.version ?? 0,
      resources,
      fileErrors,
      summary: { accepted: last.statuses.length - rejected, rejected, fileErrors: fileErrors.length, analysis: countLevels(analysis) },
      analysis,
      ...(remotes ? { remoteClusters: remoteStatus() } : {}),
      ...(remoteSecrets ? { remoteSecretErrors: secretErrors } : {}),
      ...(clusterWarnings.length ? { clusterWarnings } : {}),
    };
  };

  const remoteStatus = (): RemoteClusterStatus[] =>
    (remotes?.status() ?? []).map((r) => {
      const c = remoteCounts.find((x) => x.cluster === r.name);
      return c ? { ...r, workloads: c.workloads, services: c.services, notExported: c.notExported, refused: c.refused } : r;
    });

  let admin: AdminServer | undefined;
  let grpcPort: number;
  // a new root (rotation start) or a dropped one (overlap over) reaches agents in a snapshot
  const unsubscribeCa = tls?.ca.onChange(() => {
    if (current !== undefined) compile();
    leaderWork();
  });
  const caTls = tls;
  leaderWork = () => {
    if (!elector?.isLeader() || !kubeClient) return;
    statusWriter?.kick();
    if (caTls) {
      publishTrustBundle(kubeClient, controlNamespace, caTls.ca.trustBundle()).catch((err: Error) =>
        log.warn({ err: err.message }, 'the trust bundle could not be published in ConfigMap nodemesh-root; retried when leadership or the roots change'),
      );
    }
  };
  leaderWork();
  try {
    // the remotes first: the local source's first read compiles the first snapshot with them
    await remotes?.start();
    remoteSecrets?.start();
    if (remotes) await waitForRemotes(remotes, remoteSecrets, opts.remoteClusterTimeoutMs ?? DEFAULT_REMOTE_CLUSTER_TIMEOUT_MS);
    await source.start();
    grpcPort = await server.listen(opts.grpcAddress ?? DEFAULT_GRPC_ADDRESS);
    admin = await startAdminServer(opts.adminAddress ?? DEFAULT_ADMIN_ADDRESS, {
      registry: metrics.registry,
      ready: () => current !== undefined,
      configStatus: status,
      snapshot: () => current,
      agents: () => server.agents(),
    });
  } catch (err) {
    source.close();
    await remoteSecrets?.stop();
    remotes?.close();
    await server.close(0);
    unsubscribeCa?.();
    tls?.close();
    await elector?.stop();
    throw err;
  }
  log.info({ configDir: source.dir, grpcPort, adminPort: admin.port, trustDomain, cluster, network, remoteClusters: opts.remoteClusters?.map((r) => r.name) }, 'control plane started');

  const adminServer = admin;
  let closed = false;
  return {
    grpcPort,
    adminPort: adminServer.port,
    metrics,
    snapshot: () => current,
    status,
    agents: () => server.agents(),
    ready: () => current !== undefined,
    kubernetesTypes: () => (source instanceof KubernetesSource ? source.types() : undefined),
    kubeClient,
    isLeader: () => elector?.isLeader() ?? false,
    elector,
    rescan: async () => {
      await remotes?.scan();
      await source.scan();
      return current;
    },
    onSnapshot: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    ca: tls?.ca,
    caMetrics: tls?.caMetrics,
    servingCertificate: () => tls?.serving.chainPem(),
    close: async () => {
      if (closed) return;
      closed = true;
      source.close();
      await remoteSecrets?.stop();
      remotes?.close();
      statusWriter?.close();
      unsubscribeCa?.();
      tls?.close();
      await Promise.all([server.close(), adminServer.close(), elector?.stop()]);
      metrics.leader.set(0);
      log.info({}, 'control plane stopped');
    },
  };
}

/** The local source's watch settings, for the sources of the remote secrets' clusters. */
/**
 * Before the first snapshot: the remote secrets' first list (the clusters they name are then
 * started), then every remote cluster's first list, within `timeoutMs` in all. Those still
 * not listed are named in a warning and join the snapshot when they list.
 */
async function waitForRemotes(remotes: RemoteClusters, secrets: RemoteSecrets | undefined, timeoutMs: number): Promise<void> {
  if (timeoutMs <= 0) return;
  const deadline = Date.now() + timeoutMs;
  if (secrets && !(await settledWithin(secrets.listed(), timeoutMs))) {
    log.warn({ timeoutMs }, 'the remote secrets were not listed within the remote cluster timeout: serving without the clusters they name until they are');
  }
  const late = await remotes.listed(deadline - Date.now());
  if (late.length > 0)
    log.warn({ clusters: late, timeoutMs }, 'serving without remote clusters not listed within the remote cluster timeout: they join the snapshot when they list');
}

function pickRemoteKube(k: KubernetesSourceSettings | undefined): RemoteKubeSettings {
  if (!k) return {};
  const { coalesceMs, backoff, absentRetryMs, pageSize, watchTimeoutSeconds, requestTimeoutMs } = k;
  return Object.fromEntries(Object.entries({ coalesceMs, backoff, absentRetryMs, pageSize, watchTimeoutSeconds, requestTimeoutMs }).filter(([, v]) => v !== undefined)) as RemoteKubeSettings;
}

/**
 * The CA and what hangs off it: the serving certificate of the gRPC port, node
 * authentication, and the CertificateService implementation.
 */
async function startCa(
  o: ControlPlaneCaOptions,
  trustDomain: string,
  grpcHost: string,
  registry: ControlMetrics['registry'],
  snapshot: () => Snapshot | undefined,
  kubeClient: KubeClient | undefined,
  kubeCa: { client: KubeClient; namespace: string; isLeader: () => boolean; timeoutMs?: number } | undefined,
) {
  let nodeCaPems: string[] = [];
  if (o.nodeCaFile) {
    try {
      nodeCaPems = splitPemCertificates(await readFile(o.nodeCaFile, 'utf8'));
    } catch (err) {
      throw new NodemeshError('NM_ERR_CA', `--node-ca ${o.nodeCaFile}: ${(err as Error).message}`, { cause: err });
    }
    if (nodeCaPems.length === 0) throw new NodemeshError('NM_ERR_CA', `--node-ca ${o.nodeCaFile} holds no PEM certificate (the CA that issues node credentials)`);
  } else if (!o.tokenAuth) throw new NodemeshError('NM_ERR_CA', 'agents need a way to authenticate: --node-ca FILE (node certificates) or token authentication (--source kubernetes)');
  const { nodeCaFile: _n, serverNames, tokenAuth, ...caOpts } = o;
  let ca: LocalCa;
  if (kubeCa && !o.operator) {
    // on Kubernetes the root lives in a Secret (ca/ca-secret.ts), the same for every replica; no CA dir
    const material = await loadCaFromSecrets({
      ...kubeCa,
      generate: () => generateRootCa({ trustDomain, now: (o.clock ?? systemClock).now(), ...(o.rootTtlMs !== undefined ? { ttlMs: o.rootTtlMs } : {}) }),
      ...(o.clock ? { clock: o.clock } : {}),
    });
    ca = await startLocalCa({ ...caOpts, material, trustDomain });
  } else {
    if (!caOpts.dir) throw new NodemeshError('NM_ERR_CA', 'the CA needs --ca-dir DIR (its state), or --source kubernetes (its root in a Secret)');
    ca = await startLocalCa({ ...caOpts, trustDomain });
  }
  const caMetrics = createCaMetrics(registry);
  const gauges = () => {
    caMetrics.trustBundleRoots.set(ca.trustBundle().length);
    caMetrics.signerExpiry.set(Date.parse(ca.status().signer.notAfter) / 1000);
  };
  gauges();
  ca.onChange(gauges);
  const serving = new ServingTls({ ca, nodeCaPems, names: servingNames(grpcHost, serverNames), ...(o.clock ? { clock: o.clock } : {}) });
  try {
    await serving.start();
  } catch (err) {
    ca.close();
    throw err;
  }
  const authenticator = new EitherAuthenticator(
    nodeCaPems.length ? new NodeCertificateAuthenticator(nodeCaPems) : undefined,
    tokenAuth && kubeClient ? new TokenReviewAuthenticator({ ...tokenAuth, client: kubeClient }) : undefined,
  );
  const service = certificateServiceImplementation({ ca, authenticator, authorizer: new SnapshotNodeAuthorizer(snapshot, trustDomain), metrics: caMetrics });
  return {
    ca,
    caMetrics,
    serving,
    authenticator,
    service,
    close() {
      serving.close();
      ca.close();
    },
  };
}
