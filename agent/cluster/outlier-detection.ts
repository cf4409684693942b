// Outlier detection with Envoy's semantics (what Istio's DestinationRule outlierDetection
// configures), one detector per destination cluster. A pure state machine: results and
// sweeps come with the time, so tests drive it with a fake clock; the cluster owns the timer.
//
// Envoy: "If an upstream host returns some number of consecutive 5xx, it will be ejected.
// Note that in this case a 5xx means an actual 5xx respond code, or an event that would cause
// the HTTP router to return one on the upstream's behalf (reset, connection failure, etc.)."
// Without split_external_local_origin_errors a connect failure or reset counts as a 503 and a
// timeout as a 504, so both feed the 5xx and the gateway-error counters; with it, they feed
// only consecutiveLocalOriginFailures. Any non-5xx answer resets the 5xx and gateway counters.
//
// Ejection: "The host is ejected for some number of milliseconds ... equal to the
// base_ejection_time value multiplied by the number of times the host has been ejected in a
// row" (capped at max_ejection_time); the multiplier grows by one per ejection and shrinks by
// one for every interval the host stays healthy. "An ejected host will automatically be
// brought back into service after the ejection time has been satisfied" — checked at each
// interval sweep.
//
// The cap: a host is ejected only while 100 × (ejected + 1) / hosts ≤ maxEjectionPercent, but
// one ejection is always allowed when none is active (Envoy's historical behaviour, now its
// always_eject_one_host). Panic: when healthy hosts fall below minHealthPercent, the cluster
// balances over every host, ejected or not (Istio: "outlier detection will be disabled and
// the proxy will load balance across all hosts in the pool (healthy and unhealthy)").
import type { OutlierDetection } from '../../control/api/snapshot-routing.js';

/** Beyond Istio, off by default: eject a host whose p99 latency stays far above its peers'. */
export type LatencyEjection = NonNullable<OutlierDetection['latencyEjection']>;

export type LocalOrigin = 'connect-failure' | 'timeout' | 'reset';

export type EjectionReason = 'consecutive-5xx' | 'consecutive-gateway-errors' | 'consecutive-local-origin-failures' | 'latency';

/** An Envoy-like outlier detection event, for logs and the debug view. */
export interface OutlierEvent {
  action: 'eject' | 'uneject' | 'overflow';
  host: string;
  reason?: EjectionReason;
  /** how long this ejection lasts (eject only) */
  ejectionMs?: number;
  timesEjected: number;
}

class HostMonitor {
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  ejected = false;
  ejectedAt = 0;
  /** Envoy's ejectTimeBackoff: the multiplier of baseEjectionTime */
  backoff = 0;
  timesEjected = 0;
  /** latency histogram of the current interval (log2 buckets of ms) */
  latency: Uint32Array | undefined;
  requests = 0;

  resetCounters(): void {
    this.consecutive5xx = 0;
    this.consecutiveGateway = 0;
    this.consecutiveLocal = 0;
  }
}

const LATENCY_BUCKETS = 24;

export class OutlierDetector {
  private readonly hosts = new Map<string, HostMonitor>();
  private ejectedCount = 0;
  private config: OutlierDetection;
  private latencyConfig: LatencyEjection | undefined;

  /** `onChange` runs whenever the set of ejected hosts changes; `onEvent` for each event */
  constructor(
    config: OutlierDetection,
    private readonly onChange: () => void = () => {},
    private readonly onEvent: (e: OutlierEvent) => void = () => {},
  ) {
    this.config = config;
    this.latencyConfig = config.latencyEjection;
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  get intervalMs(): number {
    return this.config.intervalMs > 0 ? this.config.intervalMs : 10_000;
  }

  get ejected(): number {
    return this.ejectedCount;
  }

  /** A new policy applies from now on; hosts keep their state. */
  configure(config: OutlierDetection): void {
    this.config = config;
    this.latencyConfig = config.latencyEjection;
    if (!config.enabled && this.ejectedCount > 0) {
      for (const m of this.hosts.values()) m.ejected = false;
      this.ejectedCount = 0;
      this.onChange();
    }
  }

  /** The cluster's hosts changed: new ones start clean, gone ones are forgotten. */
  setHosts(keys: Iterable<string>): void {
    const keep = new Set(keys);
    let changed = false;
    for (const [k, m] of this.hosts) {
      if (keep.has(k)) continue;
      if (m.ejected) {
        this.ejectedCount--;
        changed = true;
      }
      this.hosts.delete(k);
    }
    for (const k of keep) if (!this.hosts.has(k)) this.hosts.set(k, new HostMonitor());
    if (changed) this.onChange();
  }

  isEjected(key: string): boolean {
    return this.hosts.get(key)?.ejected ?? false;
  }

  timesEjected(key: string): number {
    return this.hosts.get(key)?.timesEjected ?? 0;
  }

  /**
   * True when balancing must ignore ejections: healthy hosts below minHealthPercent
   * (Istio's default 0 never panics).
   */
  panic(): boolean {
    const total = this.hosts.size;
    if (total === 0 || this.ejectedCount === 0) return false;
    return (100 * (total - this.ejectedCount)) / total < this.config.minHealthPercent;
  }

  /** An HTTP answer from the host (gRPC: the HTTP code its grpc-status maps to). */
  onResponse(key: string, status: number, now: number, latencyMs?: number): void {
    const m = this.hosts.get(key);
    if (!m || !this.config.enabled) return;
    if (latencyMs !== undefined && this.latencyConfig) this.recordLatency(m, latencyMs);
    if (status >= 500 && status <= 599) {
      this.countExternal5xx(key, m, status, now);
    } else {
      m.consecutive5xx = 0;
      m.consecutiveGateway = 0;
      // a response means the connection worked
      m.consecutiveLocal = 0;
    }
  }

  /** A failure that originated here: connect failure or timeout to the host, or a reset. */
  onLocalFailure(key: string, kind: LocalOrigin, now: number): void {
    const m = this.hosts.get(key);
    if (!m || !this.config.enabled) return;
    if (this.config.splitExternalLocalOriginErrors) {
      // "consecutive_local_origin_failure ... This setting is only used when
      // split_external_local_origin_errors is set to true"
      const limit = this.config.consecutiveLocalOriginFailures;
      if (limit > 0 && ++m.consecutiveLocal >= limit) this.eject(key, m, 'consecutive-local-origin-failures', now);
      return;
    }
    this.countExternal5xx(key, m, kind === 'timeout' ? 504 : 503, now);
  }

  /** A connection was made (L4): with split errors, resets the local-origin counter. */
  onConnectSuccess(key: string): void {
    const m = this.hosts.get(key);
    if (m) m.consecutiveLocal = 0;
  }

  private countExternal5xx(key: string, m: HostMonitor, status: number, now: number): void {
    const c = this.config;
    const gateway = status === 502 || status === 503 || status === 504;
    if (gateway) m.consecutiveGateway++;
    else m.consecutiveGateway = 0;
    m.consecutive5xx++;
    if (c.consecutiveGatewayErrors > 0 && gateway && m.consecutiveGateway >= c.consecutiveGatewayErrors) {
      this.eject(key, m, 'consecutive-gateway-errors', now);
    } else if (c.consecutive5xxErrors > 0 && m.consecutive5xx >= c.consecutive5xxErrors) {
      this.eject(key, m, 'consecutive-5xx', now);
    }
  }

  /** May this cluster eject one more host now? */
  private mayEject(): boolean {
    if (this.ejectedCount === 0) return true; // at least one ejection is always allowed
    return (100 * (this.ejectedCount + 1)) / this.hosts.size <= this.config.maxEjectionPercent;
  }

  private eject(key: string, m: HostMonitor, reason: EjectionReason, now: number): void {
    if (m.ejected) return;
    m.resetCounters();
    if (!this.mayEject()) {
      this.onEvent({ action: 'overflow', host: key, reason, timesEjected: m.timesEjected });
      return;
    }
    const base = this.config.baseEjectionTimeMs;
    const max = this.maxEjectionMs();
    // Envoy grows the multiplier only while it still changes the capped result
    if (base * m.backoff < max + base) m.backoff++;
    m.timesEjected++;
    m.ejected = true;
    m.ejectedAt = now;
    this.ejectedCount++;
    this.onEvent({ action: 'eject', host: key, reason, ejectionMs: this.ejectionMs(m), timesEjected: m.timesEjected });
    this.onChange();
  }

  private maxEjectionMs(): number {
    const c = this.config;
    return c.maxEjectionTimeMs > 0 ? c.maxEjectionTimeMs : Math.max(300_000, c.baseEjectionTimeMs);
  }

  private ejectionMs(m: HostMonitor): number {
    return Math.min(this.config.baseEjectionTimeMs * m.backoff, this.maxEjectionMs());
  }

  /** How long the host's current ejection lasts (0 when not ejected). */
  ejectionTime(key: string): number {
    const m = this.hosts.get(key);
    return m?.ejected ? this.ejectionMs(m) : 0;
  }

  /**
   * The interval sweep: brings back hosts whose ejection time is up, lets the multiplier of
   * hosts that stayed healthy decay, and (when configured) ejects latency outliers.
   */
  sweep(now: number): void {
    if (!this.config.enabled) return;
    let changed = false;
    for (const [key, m] of this.hosts) {
      if (!m.ejected) {
        if (m.backoff > 0) m.backoff--;
        continue;
      }
      if (this.ejectionMs(m) <= now - m.ejectedAt) {
        m.ejected = false;
        m.resetCounters();
        this.ejectedCount--;
        changed = true;
        this.onEvent({ action: 'uneject', host: key, timesEjected: m.timesEjected });
      }
    }
    if (changed) this.onChange();
    if (this.latencyConfig) this.sweepLatency(now);
  }

  private recordLatency(m: HostMonitor, ms: number): void {
    m.latency ??= new Uint32Array(LATENCY_BUCKETS);
    m.latency[latencyBucket(ms)]!++;
    m.requests++;
  }

  private sweepLatency(now: number): void {
    const cfg = this.latencyConfig!;
    const p99s: { key: string; m: HostMonitor; p99: number }[] = [];
    for (const [key, m] of this.hosts) {
      if (!m.ejected && m.latency && m.requests >= cfg.minRequests) p99s.push({ key, m, p99: percentile(m.latency, m.requests, 0.99) });
      m.latency?.fill(0);
      m.requests = 0;
    }
    if (p99s.length < 2) return;
    const sorted = p99s.map((p) => p.p99).sort((a, b) => a - b);
    const median = sorted[(sorted.length - 1) >> 1]!;
    for (const p of p99s) if (p.p99 > cfg.factor * median) this.eject(p.key, p.m, 'latency', now);
  }
}

/** log2 buckets: [0,1) ms, [1,2), [2,4), … */
function latencyBucket(ms: number): number {
  if (ms < 1) return 0;
  return Math.min(LATENCY_BUCKETS - 1, 1 + Math.floor(Math.log2(ms)));
}

/** Upper bound (ms) of the bucket holding quantile q. */
function percentile(h: Uint32Array, n: number, q: number): number {
  const rank = Math.ceil(q * n);
  let seen = 0;
  for (let i = 0; i < h.length; i++) {
    seen += h[i]!;
    if (seen >= rank) return i === 0 ? 1 : 2 ** i;
  }
  return 2 ** (h.length - 1);
}
