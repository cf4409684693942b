// A bound per source pod on what it may hold of the node proxy. Every meshed pod of a node
// shares one proxy, so one pod that opens connections without end (or keeps thousands of
// requests waiting) must run into its own limit long before the proxy runs out of
// descriptors or memory for the others (a sidecar gets this for free: its pod can only
// exhaust itself). Past its share a source is refused early — a connection is reset as it
// is accepted, a request is answered 503 UO with `x-envoy-overloaded` before it is routed —
// and each refusal is counted in nodemesh_agent_proxy_errors_total{reason=
// "source_connection_limit" | "source_request_limit"}. The other sources are unaffected:
// nothing is shared between shares.
//
// The source is the pod by its address (its uid), else the address itself: unknown sources
// are bounded per address.
//
// Defaults: 4,096 connections and 4,096 requests in flight per source pod. Neither Envoy nor
// Istio bounds a pod's use of its own sidecar; these are far above what a well-behaved pod
// holds through one node proxy (Envoy's former per-cluster circuit-breaker defaults were
// 1,024) while keeping one pod's worst case to a fraction of the proxy: measured in
// test/bench/idle-connections.ts, a few KiB of memory and two descriptors per connection.
// A request holds its share from the moment its head is read until its exchange ends.
import { logger } from '../../common/log.js';
import { proxyErrors } from '../telemetry/metrics.js';

const log = logger('agent/source-limits');

export interface SourceLimitsOptions {
  /** connections one source may hold open through the proxy at once (0: unbounded) */
  maxConnectionsPerSource: number;
  /** requests one source may have in flight at once (0: unbounded) */
  maxRequestsPerSource: number;
}

export const DEFAULT_SOURCE_LIMITS: Readonly<SourceLimitsOptions> = Object.freeze({
  maxConnectionsPerSource: 4096,
  maxRequestsPerSource: 4096,
});

/** What one source holds now; handed with each of its connections to whoever serves them. */
export class SourceShare {
  connections = 0;
  requests = 0;
  /** a refusal was logged already (once per share: a flood logs once) */
  warned = false;

  constructor(
    readonly key: string,
    private readonly owner: SourceLimits,
  ) {}

  /** One more request in flight, if the source is under its bound (else counted and false). */
  tryRequest(): boolean {
    const max = this.owner.options.maxRequestsPerSource;
    if (max > 0 && this.requests >= max) {
      this.owner.refused(this, 'source_request_limit', `${max} requests in flight`);
      return false;
    }
    this.requests++;
    return true;
  }

  requestDone(): void {
    if (this.requests > 0) this.requests--;
    if (this.requests === 0 && this.connections === 0) this.owner.forget(this);
  }
}

export class SourceLimits {
  private readonly shares = new Map<string, SourceShare>();

  constructor(readonly options: SourceLimitsOptions = DEFAULT_SOURCE_LIMITS) {}

  /** Sources holding anything now. */
  get size(): number {
    return this.shares.size;
  }

  /** What `key` holds, if anything. */
  shareOf(key: string): SourceShare | undefined {
    return this.shares.get(key);
  }

  /**
   * One more connection for source `key`: its share (hand it back with releaseConnection
   * when the connection closes), or undefined when the source holds its maximum already
   * (counted).
   */
  acquireConnection(key: string): SourceShare | undefined {
    let share = this.shares.get(key);
    const max = this.options.maxConnectionsPerSource;
    if (share && max > 0 && share.connections >= max) {
      this.refused(share, 'source_connection_limit', `${max} connections`);
      return undefined;
    }
    if (!share) {
      share = new SourceShare(key, this);
      this.shares.set(key, share);
    }
    share.connections++;
    return share;
  }

  releaseConnection(share: SourceShare): void {
    if (share.connections > 0) share.connections--;
    if (share.requests === 0 && share.connections === 0) this.forget(share);
  }

  /** @internal (SourceShare) */
  forget(share: SourceShare): void {
    if (this.shares.get(share.key) === share) this.shares.delete(share.key);
  }

  /** @internal (SourceShare) */
  refused(share: SourceShare, reason: string, limit: string): void {
    proxyErrors.inc({ reason });
    if (share.warned) return;
    share.warned = true;
    log.warn({ source: share.key, reason }, `source ${share.key} holds ${limit} through the node proxy, its maximum: refusing more (counted in nodemesh_agent_proxy_errors_total{reason="${reason}"})`);
  }
}
