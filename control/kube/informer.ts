// One resource type kept in sync with the API server: client-node's ListWatch (list, then
// watch from the list's resourceVersion; a 410 Gone — as an ERROR event or an HTTP status —
// clears the resourceVersion and relists; a stream that ends is re-watched from the last
// resourceVersion seen, bookmarks included), with what it leaves to its user:
// - the watch asks for bookmarks and a server-side timeout (client-go's 5–10 min, jittered),
//   so a quiet stream still moves its resourceVersion forward and is renewed before an idle
//   connection dies unnoticed;
// - lists are paged (`limit`/`continue`), and a continue token that expired restarts the list;
// - after an error (server unreachable, 5xx, 403) ListWatch stops: it is restarted here
//   after a jittered exponential backoff, resuming from the last resourceVersion;
// - a 404 on the list means the type is not served (a CRD not installed): one log line,
//   then retried quietly every `absentRetryMs` until it appears.
// A relist compares resourceVersions (ListWatch's cache): an object unchanged across it is
// not reported again, one gone is reported deleted — no event is applied twice.
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { fullJitterBackoff, type Backoff } from '../../common/backoff.js';
import { logger } from '../../common/log.js';
import { KubeApiError, resourcePath, type KubeClient } from './kube-client.js';

const log = logger('control/kube-informer');

export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  /** served by a CRD that may not be installed: its absence is expected, not an error */
  crd?: boolean;
}

export interface InformerOptions {
  type: ResourceType;
  client: KubeClient;
  /** an object appeared or changed (the full object, kind and apiVersion set) */
  onUpsert: (obj: KubernetesObject) => void;
  onDelete: (obj: KubernetesObject) => void;
  /** the first list was applied (or the type is known to be absent) */
  onSynced: () => void;
  backoff?: Backoff;
  /** retry period while the type is not served (default 10 s) */
  absentRetryMs?: number;
  /** page size of lists (default 500, as client-go) */
  pageSize?: number;
  /** server-side watch timeout range in seconds (default [300, 600], as client-go) */
  watchTimeoutSeconds?: [number, number];
  /** counted per event: the source's metrics */
  onCount?: (what: 'list' | 'relist' | 'watch' | 'error' | 'absent') => void;
  /** a list or watch failed (other than a type not served): why, for a status */
  onError?: (err: unknown) => void;
  /** only this namespace's objects (a namespaced type) */
  namespace?: string;
  /** only the objects with these labels (`key=value`, comma-separated: the API's equality selector) */
  labelSelector?: string;
}

export type InformerState = 'starting' | 'synced' | 'absent' | 'retrying' | 'stopped';

const DEFAULT_BACKOFF: Backoff = { baseMs: 200, maxMs: 30_000 };

/** client-node's Watch, asking for bookmarks and a server-side timeout on every watch. */
class BookmarkWatch extends Watch {
  constructor(
    config: KubeConfig,
    private readonly timeout: [number, number],
    private readonly onWatch: () => void,
    private readonly labelSelector: string | undefined,
    private readonly stopped: () => boolean,
  ) {
    super(config);
  }

  // ListWatch does not look at its stop flag between its list and its watch: a stop during
  // either would leave a watch open that nothing ends. None is opened after a stop, and one
  // that was being opened when the stop came is aborted as soon as it is.
  override async watch(path: string, params: Record<string, unknown>, callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    if (this.stopped()) {
      const none = new AbortController();
      none.abort();
      return none;
    }
    this.onWatch();
    const [lo, hi] = this.timeout;
    const timeoutSeconds = Math.round(lo + Math.random() * (hi - lo));
    const controller = await super.watch(path, { ...params, allowWatchBookmarks: true, timeoutSeconds, ...(this.labelSelector ? { labelSelector: this.labelSelector } : {}) }, callback, done);
    if (this.stopped()) controller.abort();
    return controller;
  }
}

export class Informer {
  readonly type: ResourceType;
  private readonly lw: ListWatch<KubernetesObject>;
  private state_: InformerState = 'starting';
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private synced = false;
  private lists = 0;
  private readonly backoff: Backoff;
  private readonly absentRetryMs: number;

  constructor(private readonly opts: InformerOptions) {
    this.type = opts.type;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.absentRetryMs = opts.absentRetryMs ?? 10_000;
    const path = resourcePath(opts.type, opts.namespace);
    const watch = new BookmarkWatch(
      opts.client.kc,
      opts.watchTimeoutSeconds ?? [300, 600],
      () => {
        opts.onCount?.('watch');
        // ListWatch starts the watch right after it applied the list's items: the first sync is complete
        if (this.state_ === 'synced') this.markSynced();
      },
      opts.labelSelector,
      () => this.state_ === 'stopped',
    );
    this.lw = new ListWatch<KubernetesObject>(path, watch, () => this.list(), false);
    const withKind = (o: KubernetesObject): KubernetesObject => ({ ...o, apiVersion: apiVersionOf(this.type), kind: this.type.kind });
    this.lw.on('add', (o) => opts.onUpsert(withKind(o)));
    this.lw.on('update', (o) => opts.onUpsert(withKind(o)));
    this.lw.on('delete', (o) => opts.onDelete(withKind(o)));
    this.lw.on('error', (err) => this.failed(err));
  }

  get state(): InformerState {
    return this.state_;
  }

  get description(): string {
    return `${this.type.kind} (${apiVersionOf(this.type)})`;
  }

  /** the last resourceVersion seen (a list, an event or a bookmark): where a resumed watch starts */
  resourceVersion(): string {
    return this.lw.latestResourceVersion();
  }

  start(): void {
    void this.lw.start();
  }

  async stop(): Promise<void> {
    this.state_ = 'stopped';
    clearTimeout(this.timer);
    await this.lw.stop();
  }

  /** Every page of the list; its items carry no kind/apiVersion on the wire (the callbacks add them). */
  private async list(): Promise<KubernetesListObject<KubernetesObject>> {
    const base = resourcePath(this.type, this.opts.namespace);
    const size = this.opts.pageSize ?? 500;
    const items: KubernetesObject[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    for (;;) {
      const q = new URLSearchParams({ limit: String(size) });
      if (cont) q.set('continue', cont);
      if (this.opts.labelSelector) q.set('labelSelector', this.opts.labelSelector);
      // the wire's JSON (`metadata.continue`), not client-node's deserialized model (`_continue`)
      let page: { metadata?: { resourceVersion?: string; continue?: string }; items?: KubernetesObject[] };
      try {
        page = await this.opts.client.get<typeof page>(`${base}?${q}`);
      } catch (err) {
        // an expired continue token: start the list again from its first page
        if (cont && err instanceof KubeApiError && err.statusCode === 410) {
          cont = undefined;
          items.length = 0;
          continue;
        }
        throw err;
      }
      items.push(...(page.items ?? []).map(stripManagedFields));
      if (!cont) resourceVersion = page.metadata?.resourceVersion ?? '';
      cont = page.metadata?.continue || undefined;
      if (!cont) break;
    }
    this.opts.onCount?.(this.lists++ === 0 ? 'list' : 'relist');
    if (this.state_ === 'absent') log.info({ kind: this.type.kind, apiVersion: apiVersionOf(this.type) }, `${this.description} is now served: watching it`);
    this.state_ = 'synced';
    this.attempt = 0;
    return { apiVersion: apiVersionOf(this.type), kind: `${this.type.kind}List`, metadata: { resourceVersion }, items };
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.opts.onSynced();
  }

  private failed(err: unknown): void {
    if (this.state_ === 'stopped') return;
    const status = err instanceof KubeApiError ? err.statusCode : (err as { statusCode?: number }).statusCode;
    let delay: number;
    if (status === 404) {
      if (this.state_ !== 'absent') {
        const why = this.type.crd ? 'its CRD is not installed' : 'the API server does not serve it';
        log.warn({ kind: this.type.kind, apiVersion: apiVersionOf(this.type) }, `${this.description} skipped: ${why}; picked up when it appears`);
        this.opts.onCount?.('absent');
      }
      this.state_ = 'absent';
      // an absent type holds nothing: the first sync must not wait for it
      this.markSynced();
      delay = this.absentRetryMs;
    } else {
      this.opts.onCount?.('error');
      this.opts.onError?.(err);
      delay = fullJitterBackoff(this.backoff, this.attempt++);
      log.warn({ kind: this.type.kind, err: (err as Error)?.message ?? String(err), retryInMs: Math.round(delay) }, `${this.description}: list/watch failed; retrying`);
      if (this.state_ !== 'absent') this.state_ = 'retrying';
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.state_ !== 'stopped') void this.lw.start();
    }, delay);
    this.timer.unref();
  }
}

export function apiVersionOf(t: Pick<ResourceType, 'group' | 'version'>): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

/** managedFields are the bulk of most objects and read by nothing here (istiod drops them too). */
function stripManagedFields(o: KubernetesObject): KubernetesObject {
  if (!o.metadata?.managedFields) return o;
  const { managedFields: _m, ...metadata } = o.metadata;
  return { ...o, metadata };
}
