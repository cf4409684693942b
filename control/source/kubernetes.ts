// The Kubernetes config source: the API server's objects, kept by one informer per resource
// type (control/kube/informer.ts), handed to the store as the same SourceState the file
// source makes — the store, validation and the compiler do not know where an object came
// from, so the same objects give the same snapshot (test/unit/source-kubernetes.test.ts).
//
// - What is watched: the kinds nodemesh reads (KUBERNETES_TYPES). The Istio and Gateway API
//   kinds are CRDs a cluster may not have: one log line each, and they are picked up when
//   they appear. The versions are the ones Istio ≥ 1.22 and Gateway API ≥ 1.1 serve.
// - Nothing is handed over before every type has been listed once (an absent CRD counts as
//   listed, empty): a half-read cluster would tell every agent that most of the mesh is gone.
// - Events are coalesced (`coalesceMs`, default 20 ms from the first of a burst), so a
//   rollout of a hundred pods is a handful of snapshots, and a change is in force well
//   within a second.
// - An object is one SourceDocument for as long as its resourceVersion stays: the store's
//   per-document validation cache then costs only what changed. Objects carry no file and
//   line: their errors name the source ("kubernetes"), the resource (`Pod ns/name`) and the
//   field.
import type { KubernetesObject } from '@kubernetes/client-node';
import { logger } from '../../common/log.js';
import type { SourceDocument } from '../model/source-document.js';
import { Informer, apiVersionOf, type InformerState, type ResourceType } from '../kube/informer.js';
import type { KubeClient } from '../kube/kube-client.js';
import type { Backoff } from '../../common/backoff.js';
import type { SourceState } from './files.js';

const log = logger('control/source-kubernetes');

/** What a Kubernetes object's errors name in place of a file. */
export const KUBERNETES_SOURCE_FILE = 'kubernetes';

export const KUBERNETES_TYPES: readonly ResourceType[] = [
  { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false },
  { group: '', version: 'v1', kind: 'Node', plural: 'nodes', namespaced: false },
  { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true },
  { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true },
  { group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true },
  { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', plural: 'endpointslices', namespaced: true },
  { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService', plural: 'virtualservices', namespaced: true, crd: true },
  { group: 'networking.istio.io', version: 'v1', kind: 'DestinationRule', plural: 'destinationrules', namespaced: true, crd: true },
  { group: 'security.istio.io', version: 'v1', kind: 'PeerAuthentication', plural: 'peerauthentications', namespaced: true, crd: true },
  { group: 'security.istio.io', version: 'v1', kind: 'AuthorizationPolicy', plural: 'authorizationpolicies', namespaced: true, crd: true },
  { group: 'telemetry.istio.io', version: 'v1', kind: 'Telemetry', plural: 'telemetries', namespaced: true, crd: true },
  { group: 'gateway.networking.k8s.io', version: 'v1', kind: 'HTTPRoute', plural: 'httproutes', namespaced: true, crd: true },
  { group: 'gateway.networking.k8s.io', version: 'v1', kind: 'GRPCRoute', plural: 'grpcroutes', namespaced: true, crd: true },
  { group: 'gateway.networking.k8s.io', version: 'v1beta1', kind: 'ReferenceGrant', plural: 'referencegrants', namespaced: true, crd: true },
  { group: 'gateway.networking.k8s.io', version: 'v1alpha2', kind: 'TCPRoute', plural: 'tcproutes', namespaced: true, crd: true },
];

/**
 * What is read of a remote cluster (issue 13, Istio multi-primary): its workloads, Services,
 * endpoints, nodes and namespaces; its policies and routes are not (each cluster's own
 * control plane applies them), so its reader needs no permission on any CRD.
 */
export const REMOTE_KUBERNETES_TYPES: readonly ResourceType[] = KUBERNETES_TYPES.filter((t) => ['Namespace', 'Node', 'Pod', 'Service', 'EndpointSlice'].includes(t.kind));

export interface KubernetesSourceOptions {
  client: KubeClient;
  /** how the cluster was reached, for the status and logs */
  describe: string;
  onChange: (state: SourceState) => void;
  types?: readonly ResourceType[];
  coalesceMs?: number;
  backoff?: Backoff;
  absentRetryMs?: number;
  pageSize?: number;
  watchTimeoutSeconds?: [number, number];
  onCount?: (kind: string, what: 'list' | 'relist' | 'watch' | 'error' | 'absent') => void;
  /** a list or watch of `kind` failed (unreachable, refused): why */
  onError?: (kind: string, err: unknown) => void;
}

export interface KubernetesTypeStatus {
  kind: string;
  apiVersion: string;
  state: InformerState;
  objects: number;
}

export class KubernetesSource {
  readonly dir: string;
  private readonly informers: Informer[];
  private readonly docs = new Map<string, SourceDocument>();
  private pendingSync: number;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly syncWaiters: (() => void)[] = [];

  constructor(private readonly opts: KubernetesSourceOptions) {
    this.dir = opts.describe;
    const types = opts.types ?? KUBERNETES_TYPES;
    this.pendingSync = types.length;
    this.informers = types.map(
      (type) =>
        new Informer({
          type,
          client: opts.client,
          onUpsert: (o) => this.upsert(type, o),
          onDelete: (o) => this.delete(type, o),
          onSynced: () => this.typeSynced(),
          ...(opts.backoff ? { backoff: opts.backoff } : {}),
          ...(opts.absentRetryMs !== undefined ? { absentRetryMs: opts.absentRetryMs } : {}),
          ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
          ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
          onCount: (what) => opts.onCount?.(type.kind, what),
          onError: (err) => opts.onError?.(type.kind, err),
        }),
    );
  }

  /** Starts every informer; resolves at once (the first state is handed over when all have listed). */
  async start(): Promise<void> {
    log.info({ cluster: this.dir, types: this.informers.length }, 'watching the Kubernetes API server');
    for (const i of this.informers) i.start();
  }

  /** Every type has been listed once (the first state was handed over). */
  get listed(): boolean {
    return this.pendingSync === 0;
  }

  /** Resolves once every type has been listed once. */
  synced(): Promise<void> {
    if (this.pendingSync === 0) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  /** Hands over what is pending now (after the first sync), for `rescan`. */
  async scan(): Promise<boolean> {
    await this.synced();
    if (!this.timer) return false;
    this.flush();
    return true;
  }

  types(): KubernetesTypeStatus[] {
    return this.informers.map((i) => ({
      kind: i.type.kind,
      apiVersion: apiVersionOf(i.type),
      state: i.state,
      objects: [...this.docs.values()].filter((d) => d.kind === i.type.kind).length,
    }));
  }

  state(): SourceState {
    const documents = [...this.docs.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, d]) => d);
    return { files: [{ file: KUBERNETES_SOURCE_FILE, documents, documentErrors: [] }] };
  }

  /** The object as last seen (status and resourceVersion included), for the status writer. */
  object(kind: string, namespace: string, name: string): Record<string, unknown> | undefined {
    const type = this.informers.find((i) => i.type.kind === kind)?.type;
    if (!type) return undefined;
    return this.docs.get(docKey(type, { metadata: { namespace, name } }))?.object;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const i of this.informers) void i.stop();
  }

  private upsert(type: ResourceType, o: KubernetesObject): void {
    const key = docKey(type, o);
    const prev = this.docs.get(key);
    if (prev && prev.object.metadata && (prev.object.metadata as { resourceVersion?: string }).resourceVersion === o.metadata?.resourceVersion && o.metadata?.resourceVersion) return;
    this.docs.set(key, toDocument(o));
    this.changed();
  }

  private delete(type: ResourceType, o: KubernetesObject): void {
    if (this.docs.delete(docKey(type, o))) this.changed();
  }

  private typeSynced(): void {
    if (this.pendingSync === 0) return;
    this.pendingSync--;
    if (this.pendingSync > 0) return;
    log.info({ objects: this.docs.size, types: this.types().filter((t) => t.state === 'absent').map((t) => t.kind) }, 'every resource type listed; handing the cluster state over (types listed as absent are not installed)');
    this.flush();
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private changed(): void {
    if (this.pendingSync > 0 || this.closed || this.timer) return;
    this.timer = setTimeout(() => this.flush(), this.opts.coalesceMs ?? 20);
    this.timer.unref();
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    try {
      this.opts.onChange(this.state());
    } catch (err) {
      log.error({ err }, 'applying the cluster state failed');
    }
  }
}

function docKey(type: ResourceType, o: KubernetesObject): string {
  return `${type.group}\u0000${type.kind}\u0000${type.namespaced ? (o.metadata?.namespace ?? '') : ''}\u0000${o.metadata?.name ?? ''}`;
}

/** A Kubernetes object as the store reads documents: no file, no lines; its JSON size for the per-resource limit. */
export function toDocument(o: KubernetesObject): SourceDocument {
  const { managedFields: _m, ...metadata } = (o.metadata ?? {}) as Record<string, unknown>;
  const object = { ...(o as Record<string, unknown>), metadata } as Record<string, unknown>;
  const text = JSON.stringify(object);
  return {
    file: KUBERNETES_SOURCE_FILE,
    index: 0,
    line: 0,
    apiVersion: o.apiVersion ?? '',
    kind: o.kind ?? '',
    name: o.metadata?.name ?? '',
    namespace: o.metadata?.namespace,
    bytes: Buffer.byteLength(text),
    object,
    lineOf: () => undefined,
  };
}

