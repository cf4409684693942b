// Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it
// (and istiod, whose replicas all serve while one leader does the singleton work):
// - every `retryPeriodMs` (jittered ×[1, 2.2], client-go's JitterFactor 1.2) a candidate
//   reads the Lease; if nobody holds it, or the holder's record has not changed for
//   `leaseDurationSeconds` *as this replica observed it* (local time since the record last
//   changed, never the record's renewTime: the replicas' clocks need not agree), it writes
//   itself in as holder;
// - every write carries the resourceVersion it read: a 409 Conflict means another replica
//   wrote first, and this attempt simply failed (optimistic concurrency, no lock);
// - the leader renews every `retryPeriodMs`; when no renewal succeeded for `renewDeadlineMs`
//   it stops leading (onStoppedLeading) before the lease can expire for the others
//   (renewDeadline < leaseDuration), so two leaders never act at once on a sane clock;
// - on stop the leader releases the Lease (holder "", duration 1 s: client-go's
//   ReleaseOnCancel), so a rolling update hands over at once instead of after 15 s.
// Defaults are client-go's: 15 s / 10 s / 2 s.
import { randomBytes } from 'node:crypto';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { systemClock, type Clock, type ClockTimer } from '../../common/clock.js';
import { KubeApiError, resourcePath, type KubeClient } from './kube-client.js';

const log = logger('control/leader-election');

export const LEASE_TYPE = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' } as const;
export const LEADER_LEASE_NAME = 'nodemesh-control';

export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
const JITTER_FACTOR = 1.2;

export interface LeaderElectionTiming {
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface LeaderElectionOptions extends LeaderElectionTiming {
  client: KubeClient;
  namespace: string;
  /** the Lease's name (default nodemesh-control) */
  name?: string;
  /** this replica (default: $POD_NAME or the hostname, plus a random suffix: a restarted pod is a new candidate) */
  identity?: string;
  /** release the Lease when stopped while leading (default true) */
  releaseOnStop?: boolean;
  clock?: Clock;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  spec?: LeaseSpec;
}

/** A MicroTime as the API server writes it: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  readonly identity: string;
  readonly name: string;
  private readonly clock: Clock;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private leading = false;
  private stopped = true;
  private timer: ClockTimer | undefined;
  private inFlight: Promise<void> | undefined;
  /** the record as last read or written, and when (local clock) it last changed */
  private observed: { json: string; spec: LeaseSpec; resourceVersion: string } | undefined;
  private observedAt = 0;
  private lastRenew = 0;
  /** attempts made (acquire or renew), for tests that drive a fake clock */
  attempts = 0;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.clock = opts.clock ?? systemClock;
    this.name = opts.name ?? LEADER_LEASE_NAME;
    this.identity = opts.identity ?? `${process.env.POD_NAME || process.env.HOSTNAME || 'nodemesh-control'}_${randomBytes(4).toString('hex')}`;
    this.leaseMs = opts.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    this.retryMs = opts.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    // client-go's checks: a leader must give up before the others may take over
    if (!(this.leaseMs > this.renewDeadlineMs)) throw new NodemeshError('NM_ERR_KUBE', `leader election: the lease duration (${this.leaseMs} ms) must be longer than the renew deadline (${this.renewDeadlineMs} ms)`);
    if (!(this.renewDeadlineMs > JITTER_FACTOR * this.retryMs)) throw new NodemeshError('NM_ERR_KUBE', `leader election: the renew deadline (${this.renewDeadlineMs} ms) must be longer than ${JITTER_FACTOR} × the retry period (${this.retryMs} ms)`);
    if (this.leaseMs < 1000) throw new NodemeshError('NM_ERR_KUBE', `leader election: the lease duration must be at least 1 s (got ${this.leaseMs} ms)`);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder as last observed ("" when none, undefined before the first read). */
  holder(): string | undefined {
    return this.observed?.spec.holderIdentity;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    log.info({ lease: `${this.opts.namespace}/${this.name}`, identity: this.identity }, 'leader election: candidate');
    this.schedule(0);
  }

  /** Stops trying; a leader releases the Lease unless told not to. Resolves when done. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.cancel();
    await this.inFlight;
    const wasLeading = this.leading;
    this.setLeading(false);
    if (wasLeading && (this.opts.releaseOnStop ?? true)) await this.release();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => {
      this.inFlight = this.tick().finally(() => (this.inFlight = undefined));
    }, ms);
  }

  private async tick(): Promise<void> {
    const ok = await this.tryAcquireOrRenew().catch((err: unknown) => {
      log.warn({ err: (err as Error).message, lease: this.name }, 'leader election: the Lease could not be read or written');
      return false;
    });
    this.attempts++;
    if (this.stopped) return;
    const now = this.clock.now();
    if (ok) {
      this.lastRenew = now;
      this.setLeading(true);
    } else if (this.leading && (now - this.lastRenew >= this.renewDeadlineMs || (this.holder() !== undefined && this.holder() !== this.identity))) {
      log.warn({ lease: this.name, holder: this.holder(), sinceRenewMs: now - this.lastRenew }, 'leader election: leadership lost (not renewed within the renew deadline, or taken over)');
      this.setLeading(false);
    }
    // a leader renews on the period; a candidate adds client-go's jitter so that candidates spread out
    this.schedule(this.leading ? this.retryMs : this.retryMs * (1 + Math.random() * JITTER_FACTOR));
  }

  private path(name?: string): string {
    return resourcePath(LEASE_TYPE, this.opts.namespace, name);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.clock.now();
    const lease = await this.opts.client.getOptional<Lease>(this.path(this.name));
    const mine = (prev: LeaseSpec | undefined): LeaseSpec => {
      const held = prev?.holderIdentity === this.identity;
      return {
        holderIdentity: this.identity,
        leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
        acquireTime: held && prev?.acquireTime ? prev.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: held ? (prev?.leaseTransitions ?? 0) : (prev?.leaseTransitions ?? 0) + (prev?.holderIdentity ? 1 : 0),
      };
    };
    if (!lease) {
      const spec = mine(undefined);
      try {
        const made = await this.opts.client.create<Lease>(this.path(), { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.opts.namespace }, spec });
        this.observe(made, now);
        return true;
      } catch (err) {
        if (err instanceof KubeApiError && err.statusCode === 409) return false; // another replica created it first
        throw err;
      }
    }
    this.observe(lease, now);
    const spec = lease.spec ?? {};
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseMs / 1000)) * 1000;
    if (spec.holderIdentity && spec.holderIdentity !== this.identity && this.observedAt + durationMs > now) return false;
    try {
      const written = await this.opts.client.replace<Lease>(this.path(this.name), { ...lease, spec: mine(spec) });
      this.observe(written, now);
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 409) return false; // written by another replica since we read it
      throw err;
    }
  }

  private observe(lease: Lease, now: number): void {
    const spec = lease.spec ?? {};
    const json = JSON.stringify(spec);
    if (this.observed?.json !== json) this.observedAt = now;
    this.observed = { json, spec, resourceVersion: lease.metadata.resourceVersion ?? '' };
  }

  private async release(): Promise<void> {
    try {
      const lease = await this.opts.client.getOptional<Lease>(this.path(this.name));
      if (!lease || lease.spec?.holderIdentity !== this.identity) return;
      const now = microTime(this.clock.now());
      await this.opts.client.replace(this.path(this.name), { ...lease, spec: { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: lease.spec.leaseTransitions ?? 0 } });
      log.info({ lease: this.name, identity: this.identity }, 'leader election: Lease released');
    } catch (err) {
      log.warn({ err: (err as Error).message, lease: this.name }, 'leader election: the Lease could not be released; the others take over when it expires');
    }
  }

  private setLeading(v: boolean): void {
    if (this.leading === v) return;
    this.leading = v;
    if (v) log.info({ lease: `${this.opts.namespace}/${this.name}`, identity: this.identity }, 'leader election: leading');
    try {
      (v ? this.opts.onStartedLeading : this.opts.onStoppedLeading)?.();
    } catch (err) {
      log.error({ err }, 'leader election: a leadership callback failed');
    }
  }
}
