// The remote clusters a control plane discovers from (issue 13), Istio multi-primary's model:
// each remote cluster's resources are read by the same sources and validation as the local
// ones, each with its own store (its last good state, its errors in the status), and merged
// into the local snapshot by the compiler (compile/multicluster.ts).
//
// A remote's `source` is either
// - `{ dir }`: a directory of YAML (`--remote-cluster NAME=DIR[,network=NET]`; the lab), or
// - `{ kubeconfig }`: a kubeconfig, as a remote secret holds one (kube/remote-secrets.ts): a
//   read-only KubernetesSource over that API server, the same watch code as the local source,
//   limited to what a remote cluster gives (REMOTE_KUBERNETES_TYPES; no leases, no status).
//
// Remote secrets come and go while the control plane runs (`reconcile`):
// - a new cluster starts its source; it adds nothing until every type was listed once;
// - a changed kubeconfig (a rotated token, a new address) replaces the source but keeps the
//   store: the cluster's last good state stays in force until the new source has listed;
// - a cluster whose Secret (or key) went is stopped: its watches end, it leaves the snapshot;
// - an API server that cannot be reached, or refuses the reader, is an error of that cluster
//   in the status (naming its Secret and key), counted once per outage; the informers retry
//   with backoff, and what it gave before stays.
// The local cluster's state is never touched by any of this.
//
// The network of a remote cluster, in Istio's order: the one given (`network=NET`, or the
// Secret's annotation nodemesh.io/network), else the label topology.istio.io/network of that
// cluster's own system namespace (the control plane's namespace name, as Istio's
// istio-system is the same in every cluster), else none. A pod's own or its namespace's
// label still wins over it (compile/endpoints.ts podNetwork).
import { NodemeshError, type ConfigError } from '../common/errors.js';
import { logger } from '../common/log.js';
import { settledWithin } from '../common/settled-within.js';
import { KubeConfig } from '@kubernetes/client-node';
import { CLUSTER_NAME, NETWORK_LABEL, NETWORK_NAME } from './api/snapshot.js';
import type { RemoteClusterResources } from './compile/multicluster.js';
import { ResourceStore, type RemoteClusterStatus, type StoreResult } from './config-store.js';
import { KubeClient } from './kube/kube-client.js';
import type { RemoteSecretCluster } from './kube/remote-secrets.js';
import type { ConfigLimits } from './model/limits.js';
import { FileSource, type SourceState } from './source/files.js';
import { KubernetesSource, REMOTE_KUBERNETES_TYPES, type KubernetesSourceOptions } from './source/kubernetes.js';

export type { RemoteClusterStatus } from './config-store.js';

const log = logger('control/remote-clusters');

export interface RemoteClusterOptions {
  /** its cluster ID (Istio's): on its workloads and in metrics' destination_cluster */
  name: string;
  /** its network (topology.istio.io/network); "" or absent: its system namespace's label, else the one flat network */
  network?: string;
  /** where its resources are read from: a directory of YAML, or a kubeconfig (its YAML) and where that came from */
  source: { dir: string } | { kubeconfig: string; origin: string };
}

/** Parses `NAME=DIR[,network=NET]` (the CLI's form). */
export function parseRemoteCluster(spec: string): RemoteClusterOptions {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new NodemeshError('NM_ERR_CONTROL', `--remote-cluster ${JSON.stringify(spec)}: expected NAME=DIR[,network=NET]`);
  const name = spec.slice(0, eq);
  const [dir = '', ...opts] = spec.slice(eq + 1).split(',');
  if (!dir) throw new NodemeshError('NM_ERR_CONTROL', `--remote-cluster ${JSON.stringify(spec)}: no directory after ${name}=`);
  const out: RemoteClusterOptions = { name, source: { dir } };
  for (const o of opts) {
    const [k, v] = o.split('=', 2);
    if (k === 'network' && v !== undefined) out.network = v;
    else throw new NodemeshError('NM_ERR_CONTROL', `--remote-cluster ${JSON.stringify(spec)}: unknown option ${JSON.stringify(o)} (expected network=NET)`);
  }
  return out;
}

/** Checks names and networks before anything starts. */
export function checkRemoteClusters(remotes: readonly RemoteClusterOptions[], localCluster: string): void {
  const seen = new Set<string>([localCluster]);
  for (const r of remotes) {
    if (!CLUSTER_NAME.test(r.name)) throw new NodemeshError('NM_ERR_CONTROL', `remote cluster name ${JSON.stringify(r.name)}: expected up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`);
    if (seen.has(r.name)) throw new NodemeshError('NM_ERR_CONTROL', `remote cluster ${JSON.stringify(r.name)}: ${r.name === localCluster ? 'is the local cluster\'s name (--cluster): every cluster of a mesh needs its own' : 'given twice'}`);
    seen.add(r.name);
    if (r.network && !NETWORK_NAME.test(r.network)) throw new NodemeshError('NM_ERR_CONTROL', `remote cluster ${r.name}: network ${JSON.stringify(r.network)} is not a label value`);
  }
}

/** How the kubeconfig sources watch (the local source's settings, by default). */
export type RemoteKubeSettings = Pick<KubernetesSourceOptions, 'coalesceMs' | 'backoff' | 'absentRetryMs' | 'pageSize' | 'watchTimeoutSeconds'> & { requestTimeoutMs?: number };

export interface RemoteClustersOptions {
  limits: ConfigLimits;
  /** the file sources' timing */
  timing: { debounceMs?: number; rescanMs?: number };
  /** the kubeconfig sources' settings */
  kube?: RemoteKubeSettings;
  /** the system namespace whose network label is a remote cluster's network (the control plane's namespace) */
  systemNamespace: string;
  /** a remote changed (new errors of its documents to count), or came or went */
  onChange: (cluster: string, newErrors: { error: ConfigError; kind: string }[]) => void;
  /** a kubeconfig remote cannot be read (unreachable, refused): once per outage, to count */
  onSourceError?: (cluster: string, message: string) => void;
}

interface Remote {
  opts: RemoteClusterOptions;
  store: ResourceStore;
  source: FileSource | KubernetesSource;
  last: StoreResult;
  /** why its API server cannot be read now (kubeconfig sources) */
  error?: string;
}

/** Every remote cluster's source and store; `onChange` after any of them changed. */
export class RemoteClusters {
  private readonly remotes = new Map<string, Remote>();
  private started = false;

  constructor(
    remotes: readonly RemoteClusterOptions[],
    private readonly o: RemoteClustersOptions,
  ) {
    for (const opts of remotes) this.remotes.set(opts.name, this.create(opts, undefined));
  }

  /** The names read from directories (a remote secret may not take them). */
  get staticNames(): string[] {
    return [...this.remotes.values()].filter((r) => 'dir' in r.opts.source).map((r) => r.opts.name);
  }

  async start(): Promise<void> {
    this.started = true;
    for (const r of this.remotes.values()) await r.source.start();
  }

  /**
   * Waits until every cluster read from an API server has listed once, for at most `ms`, and
   * resolves with the names of those that had not (unreachable, refused, slow): the first
   * snapshot waits for them as istiod's readiness waits for its remote clusters
   * (PILOT_REMOTE_CLUSTER_TIMEOUT), so that agents are not told at a control plane's start
   * that the other clusters' endpoints are gone. Clusters read from directories are read by `start`.
   */
  async listed(ms: number): Promise<string[]> {
    const pending = () => [...this.remotes.values()].filter((r) => r.source instanceof KubernetesSource && !r.source.listed);
    const waiting = pending();
    if (waiting.length > 0) await settledWithin(Promise.all(waiting.map((r) => (r.source as KubernetesSource).synced())), ms);
    return pending().map((r) => r.opts.name);
  }

  /** Re-reads the directories and hands over what the API servers sent; a cluster not listed yet (unreachable) is not waited for. */
  async scan(): Promise<void> {
    for (const r of [...this.remotes.values()]) if (!(r.source instanceof KubernetesSource) || r.source.listed) await r.source.scan();
  }

  close(): void {
    this.started = false;
    for (const r of this.remotes.values()) r.source.close();
  }

  /**
   * The clusters the remote secrets ask for now: new ones start, changed ones are replaced
   * (their last good state kept until the new source has listed), gone ones stop. Clusters
   * read from directories are not touched, nor those in `keep` (a key still there whose new
   * value is not usable: what it gave before stays, as Istio keeps a cluster whose update failed).
   */
  reconcile(wanted: readonly RemoteSecretCluster[], keep: readonly string[] = []): void {
    const names = new Set([...wanted.map((w) => w.name), ...keep]);
    for (const [name, r] of [...this.remotes]) {
      if ('dir' in r.opts.source || names.has(name)) continue;
      r.source.close();
      this.remotes.delete(name);
      log.info({ cluster: name, from: r.opts.source.origin }, 'remote cluster removed: its Secret or key is gone');
      this.o.onChange(name, []);
    }
    for (const w of wanted) {
      const opts: RemoteClusterOptions = { name: w.name, ...(w.network ? { network: w.network } : {}), source: { kubeconfig: w.kubeconfig, origin: w.origin } };
      const prev = this.remotes.get(w.name);
      if (prev && JSON.stringify(prev.opts) === JSON.stringify(opts)) continue;
      if (prev) prev.source.close();
      const next = this.create(opts, prev);
      this.remotes.set(w.name, next);
      log.info({ cluster: w.name, from: w.origin }, prev ? 'remote cluster replaced: its kubeconfig changed' : 'remote cluster added');
      if (this.started) void next.source.start();
      if (prev) this.o.onChange(w.name, []);
    }
  }

  /** The resources in force of each remote cluster, for the compiler. */
  resources(): RemoteClusterResources[] {
    return [...this.remotes.values()].map((r) => ({ name: r.opts.name, network: this.networkOf(r), resources: r.last.resources }));
  }

  status(): RemoteClusterStatus[] {
    return [...this.remotes.values()].map((r) => {
      const rejected = r.last.statuses.filter((s) => s.state === 'Rejected').length;
      return {
        name: r.opts.name,
        network: this.networkOf(r),
        configDir: r.source.dir,
        accepted: r.last.statuses.length - rejected,
        rejected,
        fileErrors: r.last.fileErrors,
        workloads: 0,
        services: 0,
        notExported: 0,
        refused: 0,
        ...(r.error ? { error: r.error } : {}),
      };
    });
  }

  private networkOf(r: Remote): string {
    if (r.opts.network) return r.opts.network;
    const ns = r.last.resources.find((x) => x.body.kind === 'Namespace' && x.key.name === this.o.systemNamespace);
    const label = ns?.body.kind === 'Namespace' ? ns.body.spec.labels[NETWORK_LABEL] : undefined;
    return label && NETWORK_NAME.test(label) ? label : '';
  }

  private create(opts: RemoteClusterOptions, prev: Remote | undefined): Remote {
    const remote: Remote = {
      opts,
      store: prev?.store ?? new ResourceStore(this.o.limits),
      last: prev?.last ?? { resources: [], statuses: [], fileErrors: [], newErrors: [] },
      source: undefined as unknown as FileSource,
    };
    const onState = (state: SourceState) => {
      if (this.remotes.get(opts.name) !== remote) return; // replaced or removed meanwhile
      try {
        remote.last = remote.store.apply(state);
      } catch {
        return; // the store never throws by design; its last state stays
      }
      this.o.onChange(opts.name, remote.last.newErrors);
    };
    const src = opts.source;
    if ('dir' in src) {
      remote.source = new FileSource({ dir: src.dir, ...this.o.timing, limits: this.o.limits, onChange: onState });
      return remote;
    }
    const kc = new KubeConfig();
    kc.loadFromString(src.kubeconfig); // checked by kube/remote-secrets.ts before it gets here
    const { requestTimeoutMs, ...kube } = this.o.kube ?? {};
    const client = new KubeClient(kc, requestTimeoutMs !== undefined ? { requestTimeoutMs } : {});
    const reached = () => {
      if (remote.error === undefined) return;
      log.info({ cluster: opts.name, server: client.server }, 'remote cluster reachable again');
      remote.error = undefined;
      if (this.remotes.get(opts.name) === remote) this.o.onChange(opts.name, []);
    };
    remote.source = new KubernetesSource({
      ...kube,
      client,
      types: REMOTE_KUBERNETES_TYPES,
      describe: `${src.origin} (${client.server})`,
      onChange: onState,
      onCount: (_kind, what) => {
        if (what === 'list' || what === 'relist') reached();
      },
      onError: (kind, err) => {
        if (this.remotes.get(opts.name) !== remote) return;
        const first = remote.error === undefined;
        remote.error = `${src.origin}: the API server of cluster ${opts.name} (${client.server}) cannot be read (${kind}): ${(err as Error)?.message ?? String(err)}; retrying, what it gave before stays in force`;
        if (first) {
          this.o.onSourceError?.(opts.name, remote.error);
          this.o.onChange(opts.name, []);
        }
      },
    });
    return remote;
  }
}
