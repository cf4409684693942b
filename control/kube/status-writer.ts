// Status written back where Istio and Gateway API users look, by the leader only:
// - HTTPRoute, GRPCRoute, TCPRoute (GAMMA): one `status.parents[]` entry per Service
//   parentRef, ours marked `controllerName: nodemesh.io/mesh-controller`, with the two
//   conditions the Gateway API requires — Accepted (True; False/UnsupportedValue when the
//   route is rejected; False/NoMatchingParent when that Service or port does not exist) and
//   ResolvedRefs (True; False/RefNotPermitted, InvalidKind or BackendNotFound when a
//   backendRef cannot be used). Entries of other controllers (a Gateway's) are kept.
// - VirtualService, DestinationRule, PeerAuthentication, AuthorizationPolicy, Telemetry:
//   a condition of type `nodemesh.io/status` in `status.conditions` (True/Accepted, or
//   False/Rejected with the message `nodemesh config status` shows), and the analysis'
//   findings on that resource as Istio's `status.validationMessages` ({level, type: {code,
//   name}, documentationUrl}). Other conditions are kept.
// Never a write storm: a write goes out only when the status computed differs from the one
// the object carries (as the informer last saw it, lastTransitionTime aside); writes are
// one at a time, at least `minIntervalMs` apart; a status already written from the same
// resourceVersion is not written again while the informer catches up; a 409 Conflict is
// dropped (the change that caused it brings a new evaluation). Written through the
// `status` subresource (PUT …/status), which changes nothing else of the object.
import { logger } from '../../common/log.js';
import { systemClock, type Clock } from '../../common/clock.js';
import { KubeApiError, resourcePath, type KubeClient } from './kube-client.js';

const log = logger('control/status-writer');

export const CONTROLLER_NAME = 'nodemesh.io/mesh-controller';
export const ISTIO_CONDITION_TYPE = 'nodemesh.io/status';

type Obj = Record<string, any>;

/** A resource as the store judged it (ConfigStatus), with the analysis findings on it. */
export interface ResourceVerdict {
  kind: string;
  namespace: string;
  name: string;
  state: 'Accepted' | 'Rejected';
  /** the error, or the notes of an accepted resource ("" for none) */
  message: string;
  analysis: { code: string; name: string; level: 'Error' | 'Warning' | 'Info' | string; message: string }[];
}

interface Kind {
  group: string;
  version: string;
  plural: string;
  gateway: boolean;
}

/** The kinds whose status is written, as the source watches them. */
export const STATUS_KINDS: Record<string, Kind> = {
  VirtualService: { group: 'networking.istio.io', version: 'v1', plural: 'virtualservices', gateway: false },
  DestinationRule: { group: 'networking.istio.io', version: 'v1', plural: 'destinationrules', gateway: false },
  PeerAuthentication: { group: 'security.istio.io', version: 'v1', plural: 'peerauthentications', gateway: false },
  AuthorizationPolicy: { group: 'security.istio.io', version: 'v1', plural: 'authorizationpolicies', gateway: false },
  Telemetry: { group: 'telemetry.istio.io', version: 'v1', plural: 'telemetries', gateway: false },
  HTTPRoute: { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', gateway: true },
  GRPCRoute: { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'grpcroutes', gateway: true },
  TCPRoute: { group: 'gateway.networking.k8s.io', version: 'v1alpha2', plural: 'tcproutes', gateway: true },
};

export interface StatusWriterOptions {
  client: KubeClient;
  /** the object as the informer holds it now (with its status and resourceVersion) */
  current: (kind: string, namespace: string, name: string) => Obj | undefined;
  isLeader: () => boolean;
  /** spacing between two writes (default 50 ms: at most 20 writes a second) */
  minIntervalMs?: number;
  clock?: Clock;
  onWrite?: (kind: string, result: 'written' | 'conflict' | 'error') => void;
}

export class StatusWriter {
  private verdicts = new Map<string, ResourceVerdict>();
  private readonly queue = new Set<string>();
  /** key → the resourceVersion a write was based on: skip until the informer shows a newer one */
  private readonly writtenFrom = new Map<string, string>();
  private draining: Promise<void> | undefined;
  private closed = false;
  private readonly clock: Clock;

  constructor(private readonly opts: StatusWriterOptions) {
    this.clock = opts.clock ?? systemClock;
  }

  /** The store's verdicts after an apply: queues the resources whose status would change. */
  update(verdicts: readonly ResourceVerdict[]): void {
    const next = new Map<string, ResourceVerdict>();
    for (const v of verdicts) if (STATUS_KINDS[v.kind]) next.set(key(v.kind, v.namespace, v.name), v);
    this.verdicts = next;
    this.kick();
  }

  /** Re-evaluates every resource (called on becoming the leader). */
  kick(): void {
    if (this.closed || !this.opts.isLeader()) return;
    for (const k of this.verdicts.keys()) this.queue.add(k);
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
  }

  /** Resolves when nothing is queued (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  close(): void {
    this.closed = true;
    this.queue.clear();
  }

  private async drain(): Promise<void> {
    let last = 0;
    while (this.queue.size > 0 && !this.closed && this.opts.isLeader()) {
      const k = this.queue.values().next().value as string;
      this.queue.delete(k);
      const v = this.verdicts.get(k);
      if (!v) continue;
      const obj = this.opts.current(v.kind, v.namespace, v.name);
      if (!obj) continue;
      const rv = String(obj.metadata?.resourceVersion ?? '');
      if (this.writtenFrom.get(k) === rv) continue; // our write is not in the informer's copy yet
      const now = this.clock.now();
      const status = desiredStatus(obj, v, now);
      if (sameStatus(obj.status, status)) continue;
      const wait = last + (this.opts.minIntervalMs ?? 50) - this.clock.now();
      if (wait > 0) await new Promise<void>((r) => this.clock.setTimeout(r, wait));
      last = this.clock.now();
      const t = STATUS_KINDS[v.kind]!;
      try {
        await this.opts.client.replace(resourcePath(t, v.namespace, v.name, 'status'), { ...obj, status });
        this.writtenFrom.set(k, rv);
        this.opts.onWrite?.(v.kind, 'written');
      } catch (err) {
        const conflict = err instanceof KubeApiError && err.statusCode === 409;
        this.opts.onWrite?.(v.kind, conflict ? 'conflict' : 'error');
        if (!conflict && !(err instanceof KubeApiError && err.statusCode === 404)) log.warn({ kind: v.kind, namespace: v.namespace, name: v.name, err: (err as Error).message }, 'status could not be written; retried on the next change');
      }
    }
    for (const k of this.writtenFrom.keys()) if (!this.verdicts.has(k)) this.writtenFrom.delete(k);
  }
}

function key(kind: string, namespace: string, name: string): string {
  return `${kind}\u0000${namespace}\u0000${name}`;
}

/** The status the object should carry: its current one with our parts replaced. */
export function desiredStatus(obj: Obj, v: ResourceVerdict, now: number): Obj {
  const t = STATUS_KINDS[v.kind]!;
  const generation = typeof obj.metadata?.generation === 'number' ? obj.metadata.generation : undefined;
  const old = (obj.status ?? {}) as Obj;
  const stamp = new Date(Math.floor(now / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  const condition = (prev: Obj[] | undefined, type: string, ok: boolean, reason: string, message: string): Obj => {
    const before = prev?.find((c) => c.type === type);
    const status = ok ? 'True' : 'False';
    return {
      type,
      status,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: before?.status === status && before.lastTransitionTime ? before.lastTransitionTime : stamp,
      reason,
      message,
    };
  };
  const message = v.message.replace(/^kubernetes: /, '');
  if (!t.gateway) {
    const others = ((old.conditions ?? []) as Obj[]).filter((c) => c.type !== ISTIO_CONDITION_TYPE);
    const ours = condition(old.conditions, ISTIO_CONDITION_TYPE, v.state === 'Accepted', v.state === 'Accepted' ? 'Accepted' : 'Rejected', message);
    const validationMessages = v.analysis.map((a) => ({
      level: a.level.toUpperCase() === 'ERROR' ? 'ERROR' : a.level.toUpperCase() === 'WARNING' ? 'WARNING' : 'INFO',
      type: { code: a.code, name: a.name },
      ...(a.code.startsWith('IST') ? { documentationUrl: `https://istio.io/latest/docs/reference/config/analysis/${a.code.toLowerCase()}/` } : {}),
    }));
    const { validationMessages: _vm, ...rest } = old;
    return { ...rest, conditions: [...others, ours], ...(validationMessages.length ? { validationMessages } : {}) };
  }
  const parentRefs = ((obj.spec?.parentRefs ?? []) as Obj[]).map((p, i) => ({ p, i })).filter(({ p }) => (p.group ?? '') === '' && (p.kind ?? 'Service') === 'Service');
  const oldParents = (old.parents ?? []) as Obj[];
  const notes = message.split('; ');
  const backendProblems = notes.filter((n) => /^spec\.rules\[\d+\]: (?!mirror)/.test(n));
  const resolved = backendProblems.length === 0;
  const refReason = backendProblems.some((n) => n.includes('RefNotPermitted')) ? 'RefNotPermitted' : backendProblems.some((n) => n.includes('only core Services')) ? 'InvalidKind' : 'BackendNotFound';
  const ours = parentRefs.map(({ p, i }) => {
    const parentRef: Obj = { group: '', kind: 'Service', name: p.name, ...(p.namespace ? { namespace: p.namespace } : {}), ...(p.port !== undefined ? { port: p.port } : {}), ...(p.sectionName ? { sectionName: p.sectionName } : {}) };
    const before = oldParents.find((e) => e.controllerName === CONTROLLER_NAME && sameParent(e.parentRef, parentRef))?.conditions as Obj[] | undefined;
    const detached = notes.find((n) => n.startsWith(`spec.parentRefs[${i}]:`));
    const accepted =
      v.state === 'Rejected'
        ? condition(before, 'Accepted', false, 'UnsupportedValue', message)
        : detached
          ? condition(before, 'Accepted', false, 'NoMatchingParent', detached)
          : condition(before, 'Accepted', true, 'Accepted', 'Route was valid');
    const refs = v.state === 'Rejected' || resolved ? condition(before, 'ResolvedRefs', true, 'ResolvedRefs', 'All references resolved') : condition(before, 'ResolvedRefs', false, refReason, backendProblems.join('; '));
    return { parentRef, controllerName: CONTROLLER_NAME, conditions: [accepted, refs] };
  });
  const others = oldParents.filter((e) => e.controllerName !== CONTROLLER_NAME);
  return { ...old, parents: [...others, ...ours] };
}

function sameParent(a: Obj | undefined, b: Obj): boolean {
  return !!a && (a.name ?? '') === b.name && (a.namespace ?? '') === (b.namespace ?? '') && (a.port ?? '') === (b.port ?? '') && (a.sectionName ?? '') === (b.sectionName ?? '') && (a.kind ?? 'Service') === b.kind;
}

/** Equal but for lastTransitionTime (kept from the old status when nothing transitioned). */
function sameStatus(a: unknown, b: unknown): boolean {
  return JSON.stringify(normalize(a ?? {})) === JSON.stringify(normalize(b));
}

function normalize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v as Obj)
        .filter(([k]) => k !== 'lastTransitionTime')
        .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
        .map(([k, x]) => [k, normalize(x)]),
    );
  }
  return v;
}
