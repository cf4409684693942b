// A stand-in for the Kubernetes API server, at the wire level: HTTPS with a bearer token,
// the REST paths of core and group resources, and the protocol the control plane's client
// (client-node's KubeConfig and Watch) speaks to a real one:
// - list: `{kind: XList, metadata: {resourceVersion, continue}, items}` (items without
//   kind/apiVersion, as the real server sends them), pages with `limit`/`continue`, a
//   continue token that expired → 410 Gone;
// - watch (`?watch=true&resourceVersion=N`): chunked JSON lines, one event each (ADDED,
//   MODIFIED, DELETED, BOOKMARK when `allowWatchBookmarks=true`), from the history after N;
//   N older than the compacted history → an ERROR event with a 410 Status, then the end of
//   the stream (what the real server does); `timeoutSeconds` ends the stream;
// - a resource whose CRD is not installed → 404 on every path of it, until installed;
// - create (POST, 409 AlreadyExists), update (PUT, 409 Conflict on a stale
//   resourceVersion), the `status` subresource, delete;
// - TokenReview (authentication.k8s.io/v1): tokens the test registers, with audiences, an
//   expiry and the bound pod, answered as the real authenticator does.
// The test drives what a cluster's controllers would: objects, compaction, dropped streams.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export type KubeObject = { apiVersion?: string; kind?: string; metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; [k: string]: unknown }; [k: string]: unknown };

export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  /** a CRD: 404 until installed */
  crd?: boolean;
}

/** The resource types a cluster with Istio and the Gateway API serves (CRDs installed or not, by the test). */
export const STANDARD_TYPES: ResourceType[] = [
  { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false },
  { group: '', version: 'v1', kind: 'Node', plural: 'nodes', namespaced: false },
  { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true },
  { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true },
  { group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true },
  { group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true },
  { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  { group: '', version: 'v1', kind: 'Event', plural: 'events', namespaced: true },
  { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', namespaced: true },
  { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', plural: 'endpointslices', namespaced: true },
  { group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', namespaced: true },
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

export interface TokenInfo {
  /** system:serviceaccount:<ns>:<name> */
  username: string;
  audiences: string[];
  /** ms since epoch */
  expiresAt: number;
  /** the pod the token is bound to (projected tokens) */
  pod?: { name: string; uid: string };
}

interface Event {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  rv: number;
  object: KubeObject;
}

interface Watcher {
  type: ResourceType;
  namespace: string | undefined;
  /** `key=value` pairs every object sent must carry (the equality `labelSelector`) */
  selector: [string, string][];
  res: ServerResponse;
  bookmarks: boolean;
  sentRv: number;
}

interface TypeState {
  type: ResourceType;
  installed: boolean;
  objects: Map<string, KubeObject>;
  history: Event[];
  /** watches from before this resourceVersion get 410 Gone */
  compactedRv: number;
}

export interface StandInCounters {
  lists: Map<string, number>;
  watches: Map<string, number>;
  gone: number;
  tokenReviews: number;
}

export class KubeApiServerStandIn {
  readonly caPem: string;
  readonly token = 'stand-in-admin-token';
  private server!: Server;
  private port = 0;
  private rv = 100;
  private uidSeq = 0;
  private readonly types = new Map<string, TypeState>();
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private readonly continues = new Map<string, { items: KubeObject[]; rv: number }>();
  private readonly tokens = new Map<string, TokenInfo>();
  /** bearer tokens accepted besides the admin's (a ServiceAccount's, as a remote secret holds) */
  private readonly bearers = new Set<string>();
  /** paths of every request, in order, for assertions on the protocol */
  readonly requests: string[] = [];
  readonly counters: StandInCounters = { lists: new Map(), watches: new Map(), gone: 0, tokenReviews: 0 };
  /** requests answered 500 while > 0 (each decrements) */
  failNext = 0;
  /** ms every list (not watch) is held before its answer: a slow or far API server */
  private listDelayMs = 0;

  private constructor(
    private readonly cert: { key: string; cert: string },
    types: ResourceType[],
    private readonly now: () => number,
  ) {
    this.caPem = cert.cert;
    for (const type of types) this.types.set(typeKey(type), { type, installed: !type.crd, objects: new Map(), history: [], compactedRv: 0 });
  }

  static async start(opts: { types?: ResourceType[]; installCrds?: boolean; now?: () => number } = {}): Promise<KubeApiServerStandIn> {
    const s = new KubeApiServerStandIn(selfSignedCert(), opts.types ?? STANDARD_TYPES, opts.now ?? Date.now);
    if (opts.installCrds !== false) for (const t of s.types.values()) t.installed = true;
    await s.listen();
    return s;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** Holds every later list for `ms` before answering it (0: at once). */
  delayLists(ms: number): void {
    this.listDelayMs = ms;
  }

  /** A kubeconfig for this server (written into `dir`), as `kubectl config view --raw` prints one. */
  writeKubeconfig(dir: string, token = this.token): string {
    const file = path.join(dir, 'kubeconfig');
    const ca = Buffer.from(this.caPem).toString('base64');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: stand-in\n  cluster:\n    server: ${this.url}\n    certificate-authority-data: ${ca}`,
        'users:',
        `- name: nodemesh\n  user:\n    token: ${token}`,
        'contexts:',
        '- name: stand-in\n  context:\n    cluster: stand-in\n    user: nodemesh',
        'current-context: stand-in',
        '',
      ].join('\n'),
    );
    return file;
  }

  private listen(): Promise<void> {
    this.server = createServer({ key: this.cert.key, cert: this.cert.cert }, (req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) this.status(res, 500, 'InternalError', err.message);
        else res.destroy();
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => {
      this.port = (this.server.address() as { port: number }).port;
      resolve();
    }));
  }

  async close(): Promise<void> {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---- what the test (standing in for a cluster's controllers and users) does ----

  installCrd(kind: string): void {
    const t = this.typeByKind(kind);
    t.installed = true;
  }

  /** Creates or replaces an object (apiVersion/kind pick its type); returns it as stored. */
  apply(obj: KubeObject): KubeObject {
    const t = this.typeFor(obj);
    const key = objKey(t.type, obj.metadata.namespace, obj.metadata.name);
    const existing = t.objects.get(key);
    return this.store(t, obj, existing ? 'MODIFIED' : 'ADDED', existing);
  }

  remove(kind: string, namespace: string | undefined, name: string): boolean {
    const t = this.typeByKind(kind);
    const key = objKey(t.type, namespace, name);
    const existing = t.objects.get(key);
    if (!existing) return false;
    t.objects.delete(key);
    const rv = ++this.rv;
    const object = { ...existing, metadata: { ...existing.metadata, resourceVersion: String(rv) } };
    this.emit(t, { type: 'DELETED', rv, object });
    return true;
  }

  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const t = this.typeByKind(kind);
    return t.objects.get(objKey(t.type, namespace, name));
  }

  list(kind: string): KubeObject[] {
    return [...this.typeByKind(kind).objects.values()];
  }

  /** Forgets the history of `kind` (all kinds when absent): a watch from before now gets 410 Gone. */
  compact(kind?: string): void {
    for (const t of this.types.values()) if (!kind || t.type.kind === kind) {
      t.compactedRv = this.rv;
      t.history = [];
    }
  }

  /** Cuts every open watch stream of `kind` (all when absent) mid-stream, as a dropped connection. */
  dropWatches(kind?: string): number {
    let n = 0;
    for (const w of [...this.watchers]) if (!kind || w.type.kind === kind) {
      w.res.socket?.destroy();
      this.watchers.delete(w);
      n++;
    }
    return n;
  }

  /** Sends a BOOKMARK at the current resourceVersion to every watch that asked for them. */
  bookmark(): void {
    for (const w of this.watchers) if (w.bookmarks) this.send(w, { type: 'BOOKMARK', object: { kind: w.type.kind, apiVersion: apiVersion(w.type), metadata: { name: '', resourceVersion: String(this.rv) } } as KubeObject }, this.rv);
  }

  openWatches(kind?: string): number {
    return [...this.watchers].filter((w) => !kind || w.type.kind === kind).length;
  }

  addToken(token: string, info: TokenInfo): void {
    this.tokens.set(token, info);
  }

  /** Accepts `token` as a bearer token from now on (a ServiceAccount token the test minted). */
  acceptBearer(token: string): void {
    this.bearers.add(token);
  }

  // ---- the wire ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://stand-in');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const bearer = req.headers.authorization?.replace(/^Bearer /, '');
    if (bearer !== this.token && !(bearer && this.bearers.has(bearer))) return this.status(res, 401, 'Unauthorized', 'Unauthorized');
    if (this.failNext > 0) {
      this.failNext--;
      return this.status(res, 500, 'InternalError', 'the stand-in was told to fail this request');
    }
    const body = req.method === 'POST' || req.method === 'PUT' ? await readJson(req) : undefined;
    if (url.pathname === '/apis/authentication.k8s.io/v1/tokenreviews' && req.method === 'POST') return this.tokenReview(res, body as KubeObject);
    const route = this.route(url.pathname);
    if (!route) return this.status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    const { state, namespace, name, sub } = route;
    if (!state.installed) return this.status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    if (req.method === 'GET' && name === undefined) {
      if (url.searchParams.get('watch') === 'true') return this.watch(state, namespace, url, req, res);
      if (this.listDelayMs > 0) await new Promise((r) => setTimeout(r, this.listDelayMs));
      return this.listResponse(state, namespace, url, res);
    }
    if (req.method === 'GET') {
      const obj = state.objects.get(objKey(state.type, namespace, name!));
      return obj ? json(res, 200, obj) : this.status(res, 404, 'NotFound', `${state.type.plural} "${name}" not found`);
    }
    if (req.method === 'POST' && name === undefined) {
      const obj = body as KubeObject;
      obj.metadata.namespace = state.type.namespaced ? namespace : undefined;
      if (state.objects.has(objKey(state.type, namespace, obj.metadata.name))) return this.status(res, 409, 'AlreadyExists', `${state.type.plural} "${obj.metadata.name}" already exists`);
      return json(res, 201, this.store(state, obj, 'ADDED', undefined));
    }
    if (req.method === 'PUT' && name !== undefined) {
      const obj = body as KubeObject;
      const existing = state.objects.get(objKey(state.type, namespace, name));
      if (!existing) return this.status(res, 404, 'NotFound', `${state.type.plural} "${name}" not found`);
      if (obj.metadata.resourceVersion !== existing.metadata.resourceVersion)
        return this.status(res, 409, 'Conflict', `Operation cannot be fulfilled on ${state.type.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
      // the status subresource changes status only; the main resource everything but status
      const next = sub === 'status' ? { ...existing, status: obj.status } : { ...obj, status: existing.status };
      return json(res, 200, this.store(state, next as KubeObject, 'MODIFIED', existing));
    }
    if (req.method === 'DELETE' && name !== undefined) {
      const existing = state.objects.get(objKey(state.type, namespace, name));
      if (!existing) return this.status(res, 404, 'NotFound', `${state.type.plural} "${name}" not found`);
      this.remove(state.type.kind, namespace, name);
      return json(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success' });
    }
    return this.status(res, 405, 'MethodNotAllowed', `${req.method} is not supported here`);
  }

  private route(p: string): { state: TypeState; namespace: string | undefined; name: string | undefined; sub: string | undefined } | undefined {
    const parts = p.split('/').filter(Boolean);
    let group: string;
    let version: string;
    let rest: string[];
    if (parts[0] === 'api' && parts.length >= 2) {
      group = '';
      version = parts[1]!;
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 3) {
      group = parts[1]!;
      version = parts[2]!;
      rest = parts.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub] = rest;
    const state = [...this.types.values()].find((t) => t.type.group === group && t.type.version === version && t.type.plural === plural);
    if (!state || (namespace !== undefined && !state.type.namespaced)) return undefined;
    return { state, namespace, name, sub };
  }

  private listResponse(state: TypeState, namespace: string | undefined, url: URL, res: ServerResponse): void {
    const kind = state.type.kind;
    this.counters.lists.set(kind, (this.counters.lists.get(kind) ?? 0) + 1);
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const cont = url.searchParams.get('continue');
    let items: KubeObject[];
    let rv: number;
    if (cont) {
      const page = this.continues.get(cont);
      if (!page) {
        this.counters.gone++;
        return this.status(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      }
      this.continues.delete(cont);
      ({ items, rv } = page);
    } else {
      const selector = parseSelector(url);
      items = [...state.objects.values()].filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && labelsMatch(selector, o)).sort((a, b) => cmp(objKey(state.type, a.metadata.namespace, a.metadata.name), objKey(state.type, b.metadata.namespace, b.metadata.name)));
      rv = this.rv;
    }
    let next: string | undefined;
    if (limit > 0 && items.length > limit) {
      next = `c${++this.uidSeq}`;
      this.continues.set(next, { items: items.slice(limit), rv });
      items = items.slice(0, limit);
    }
    // the real server leaves kind and apiVersion out of list items
    const bare = items.map(({ kind: _k, apiVersion: _a, ...o }) => o);
    json(res, 200, { kind: `${kind}List`, apiVersion: apiVersion(state.type), metadata: { resourceVersion: String(rv), ...(next ? { continue: next } : {}) }, items: bare });
  }

  private watch(state: TypeState, namespace: string | undefined, url: URL, req: IncomingMessage, res: ServerResponse): void {
    const kind = state.type.kind;
    this.counters.watches.set(kind, (this.counters.watches.get(kind) ?? 0) + 1);
    const from = Number(url.searchParams.get('resourceVersion') || 0);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // the real server sends the headers at once: a client's watch is open (and abortable) before any event
    res.flushHeaders();
    const w: Watcher = { type: state.type, namespace, selector: parseSelector(url), res, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true', sentRv: from };
    if (from !== 0 && from < state.compactedRv) {
      this.counters.gone++;
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${from} (${state.compactedRv})`, reason: 'Expired', code: 410 } }) + '\n');
      return;
    }
    this.watchers.add(w);
    const timeout = Number(url.searchParams.get('timeoutSeconds') || 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    timer?.unref();
    const done = () => {
      clearTimeout(timer);
      this.watchers.delete(w);
    };
    req.on('close', done);
    res.on('close', done);
    if (from === 0) {
      // no resourceVersion: the current state as ADDED events, then changes (real semantics)
      for (const o of state.objects.values()) if (inNs(w, o)) this.send(w, { type: 'ADDED', object: o }, this.rv);
    } else {
      for (const e of state.history) if (e.rv > from && inNs(w, e.object)) this.send(w, { type: e.type, object: e.object }, e.rv);
    }
  }

  private send(w: Watcher, event: { type: string; object: KubeObject }, rv: number): void {
    if (w.res.writableEnded || w.res.destroyed) return;
    w.sentRv = rv;
    w.res.write(JSON.stringify(event) + '\n');
  }

  private store(t: TypeState, obj: KubeObject, type: 'ADDED' | 'MODIFIED', existing: KubeObject | undefined): KubeObject {
    const rv = ++this.rv;
    const stored: KubeObject = {
      ...obj,
      apiVersion: apiVersion(t.type),
      kind: t.type.kind,
      metadata: {
        ...obj.metadata,
        ...(t.type.namespaced ? { namespace: obj.metadata.namespace ?? 'default' } : {}),
        uid: existing?.metadata.uid ?? obj.metadata.uid ?? `uid-${++this.uidSeq}`,
        resourceVersion: String(rv),
        creationTimestamp: (existing?.metadata.creationTimestamp as string | undefined) ?? new Date(this.now()).toISOString(),
        managedFields: [{ manager: 'stand-in', operation: 'Update', apiVersion: apiVersion(t.type) }],
      },
    };
    if (!t.type.namespaced) delete stored.metadata.namespace;
    t.objects.set(objKey(t.type, stored.metadata.namespace, stored.metadata.name), stored);
    this.emit(t, { type, rv, object: stored }, existing);
    return stored;
  }

  private emit(t: TypeState, e: Event, previous?: KubeObject): void {
    t.history.push(e);
    for (const w of this.watchers) {
      if (w.type !== t.type) continue;
      const now = inNs(w, e.object);
      const before = previous !== undefined && inNs(w, previous);
      // a label change moves an object in or out of a selector's view: ADDED / DELETED to that watch
      if (now) this.send(w, { type: e.type === 'MODIFIED' && !before ? 'ADDED' : e.type, object: e.object }, e.rv);
      else if (before) this.send(w, { type: 'DELETED', object: e.object }, e.rv);
    }
  }

  private tokenReview(res: ServerResponse, review: KubeObject): void {
    this.counters.tokenReviews++;
    const spec = (review.spec ?? {}) as { token?: string; audiences?: string[] };
    const info = spec.token ? this.tokens.get(spec.token) : undefined;
    // the real authenticator: the token must be valid and carry one of the asked audiences
    // (the API server's own audience when none are asked)
    const wanted = spec.audiences?.length ? spec.audiences : ['https://kubernetes.default.svc.cluster.local'];
    const matched = info ? wanted.filter((a) => info.audiences.includes(a)) : [];
    let status: Record<string, unknown>;
    if (!info) status = { authenticated: false, error: 'invalid bearer token' };
    else if (info.expiresAt <= this.now()) status = { authenticated: false, error: 'invalid bearer token, token has expired' };
    else if (matched.length === 0) status = { authenticated: false, error: 'invalid bearer token, token audiences ["' + info.audiences.join('","') + '"] is invalid for the target audiences ["' + wanted.join('","') + '"]' };
    else {
      const [, , ns] = info.username.split(':');
      const extra: Record<string, string[]> = {};
      if (info.pod) {
        extra['authentication.kubernetes.io/pod-name'] = [info.pod.name];
        extra['authentication.kubernetes.io/pod-uid'] = [info.pod.uid];
      }
      status = { authenticated: true, audiences: matched, user: { username: info.username, uid: `sa-uid-${info.username}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'], extra } };
    }
    json(res, 201, { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec, status });
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
  }

  private typeFor(obj: KubeObject): TypeState {
    const t = [...this.types.values()].find((s) => s.type.kind === obj.kind && (obj.apiVersion === undefined || groupOf(obj.apiVersion) === s.type.group));
    if (!t) throw new Error(`the stand-in serves no ${obj.apiVersion} ${obj.kind}`);
    return t;
  }

  private typeByKind(kind: string): TypeState {
    const t = [...this.types.values()].find((s) => s.type.kind === kind);
    if (!t) throw new Error(`the stand-in serves no ${kind}`);
    return t;
  }
}

function inNs(w: Watcher, o: KubeObject): boolean {
  return (w.namespace === undefined || o.metadata.namespace === w.namespace) && labelsMatch(w.selector, o);
}

/** The equality-based `labelSelector` (`a=b,c=d`): what the stand-in understands of selectors. */
function parseSelector(url: URL): [string, string][] {
  const s = url.searchParams.get('labelSelector');
  if (!s) return [];
  return s.split(',').map((p) => {
    const i = p.indexOf('=');
    return [p.slice(0, i), p.slice(i + 1)] as [string, string];
  });
}

function labelsMatch(selector: [string, string][], o: KubeObject): boolean {
  const labels = (o.metadata.labels ?? {}) as Record<string, string>;
  return selector.every(([k, v]) => labels[k] === v);
}

function typeKey(t: ResourceType): string {
  return `${t.group}/${t.plural}`;
}

function objKey(t: ResourceType, namespace: string | undefined, name: string): string {
  return t.namespaced ? `${namespace ?? 'default'}/${name}` : name;
}

export function apiVersion(t: Pick<ResourceType, 'group' | 'version'>): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

function groupOf(av: string): string {
  const i = av.lastIndexOf('/');
  return i < 0 ? '' : av.slice(0, i);
}

function json(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      } catch (err) {
        reject(err as Error);
      }
    });
    req.on('error', reject);
  });
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

let cachedCert: { key: string; cert: string } | undefined;

/** A self-signed serving certificate for 127.0.0.1 / localhost, by openssl (the CA a kubeconfig names); one per process. */
function selfSignedCert(): { key: string; cert: string } {
  if (cachedCert) return cachedCert;
  const dir = mkdtempSync(path.join(tmpdir(), 'nm-kube-standin-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=kube-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
    cachedCert = { key: readFileSync(path.join(dir, 'key.pem'), 'utf8'), cert: readFileSync(path.join(dir, 'cert.pem'), 'utf8') };
    return cachedCert;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
