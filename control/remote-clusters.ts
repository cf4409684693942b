// The remote clusters a control plane discovers from (`--remote-cluster NAME=DIR[,network=NET]`,
// issue 13), Istio multi-primary's model: each remote cluster's resources are read by the
// same source and validation as the local ones (a directory of YAML here, with its own
// store: the last good state of each file, its errors in the status) and merged into the
// local snapshot by the compiler (compile/multicluster.ts).
//
// A remote's `source` is a directory today. Istio reads a remote cluster from a kubeconfig
// kept in a "remote secret"; the option is shaped so that `source: { kubeconfig }` (a
// KubernetesSource over that cluster's API server, read-only: no leases, no status) can be
// added next to `dir` without changing the rest.
import { NodemeshError, type ConfigError } from '../common/errors.js';
import { CLUSTER_NAME, NETWORK_NAME } from './api/snapshot.js';
import type { RemoteClusterResources } from './compile/multicluster.js';
import { ResourceStore, type RemoteClusterStatus, type StoreResult } from './config-store.js';

export type { RemoteClusterStatus } from './config-store.js';
import type { ConfigLimits } from './model/limits.js';
import { FileSource } from './source/files.js';

export interface RemoteClusterOptions {
  /** its cluster ID (Istio's): on its workloads and in metrics' destination_cluster */
  name: string;
  /** its network (topology.istio.io/network); "" or absent: the local cluster's flat network */
  network?: string;
  /** where its resources are read from: a directory of YAML (a kubeconfig later) */
  source: { dir: string };
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

interface Remote {
  opts: RemoteClusterOptions;
  store: ResourceStore;
  source: FileSource;
  last: StoreResult;
}

/** Every remote cluster's source and store; `onChange` after any of them changed. */
export class RemoteClusters {
  private readonly remotes: Remote[];

  constructor(
    remotes: readonly RemoteClusterOptions[],
    limits: ConfigLimits,
    timing: { debounceMs?: number; rescanMs?: number },
    onChange: (cluster: string, newErrors: { error: ConfigError; kind: string }[]) => void,
  ) {
    this.remotes = remotes.map((opts) => {
      const remote: Remote = {
        opts,
        store: new ResourceStore(limits),
        last: { resources: [], statuses: [], fileErrors: [], newErrors: [] },
        source: undefined as unknown as FileSource,
      };
      remote.source = new FileSource({
        dir: opts.source.dir,
        ...timing,
        limits,
        onChange: (state) => {
          try {
            remote.last = remote.store.apply(state);
          } catch {
            return; // the store never throws by design; its last state stays
          }
          onChange(opts.name, remote.last.newErrors);
        },
      });
      return remote;
    });
  }

  async start(): Promise<void> {
    for (const r of this.remotes) await r.source.start();
  }

  async scan(): Promise<void> {
    for (const r of this.remotes) await r.source.scan();
  }

  close(): void {
    for (const r of this.remotes) r.source.close();
  }

  /** The resources in force of each remote cluster, for the compiler. */
  resources(): RemoteClusterResources[] {
    return this.remotes.map((r) => ({ name: r.opts.name, network: r.opts.network ?? '', resources: r.last.resources }));
  }

  status(): RemoteClusterStatus[] {
    return this.remotes.map((r) => {
      const rejected = r.last.statuses.filter((s) => s.state === 'Rejected').length;
      return {
        name: r.opts.name,
        network: r.opts.network ?? '',
        configDir: r.source.dir,
        accepted: r.last.statuses.length - rejected,
        rejected,
        fileErrors: r.last.fileErrors,
        workloads: 0,
        services: 0,
        notExported: 0,
        refused: 0,
      };
    });
  }
}
