// Admission to a destination cluster, one per cluster: Istio's connectionPool limits as
// Envoy's circuit breakers. max_requests (Istio http2MaxRequests) on requests in flight,
// max_connections on HTTP/1.1 requests in flight (one per connection), max_pending_requests
// (http1MaxPendingRequests) on the queue, max_retries on retries in flight.
// "max_pending_requests: The maximum number of pending requests that Envoy will allow to the
// upstream cluster" — past it the request is answered 503 at once with flag UO and
// `x-envoy-overloaded: true`; nothing queues without bound. The queue is fair across source
// workloads (per-workload-fairness.ts).
import type { ConnectionPool } from '../../control/api/snapshot-routing.js';
import { FairQueue } from './per-workload-fairness.js';

export type HttpProtocol = 'http1' | 'http2';

/** A request waiting to be admitted. */
export interface Waiter {
  readonly protocol: HttpProtocol;
  readonly sourceKey: string;
  /** admitted: it now holds a slot until it calls Admission.release */
  admit(): void;
  /** gave its queue slot to a lighter source: answer 503 UO */
  overflow(): void;
}

export type AdmitResult = 'admitted' | 'queued' | 'overflow';

export class Admission {
  active = 0;
  activeHttp1 = 0;
  retries = 0;
  private limits: ConnectionPool;
  private readonly queue: FairQueue<Waiter>;

  constructor(limits: ConnectionPool) {
    this.limits = limits;
    this.queue = new FairQueue(limits.http1MaxPendingRequests);
  }

  configure(limits: ConnectionPool): void {
    this.limits = limits;
    this.queue.limit = limits.http1MaxPendingRequests;
    this.pump();
  }

  get pending(): number {
    return this.queue.size;
  }

  private canStart(p: HttpProtocol): boolean {
    if (this.active >= this.limits.http2MaxRequests) return false;
    return p === 'http2' || this.activeHttp1 < this.limits.maxConnections;
  }

  /** Admits now (then `admit()` has NOT been called: the caller proceeds), queues, or refuses. */
  request(w: Waiter): AdmitResult {
    if (this.queue.size === 0 && this.canStart(w.protocol)) {
      this.take(w.protocol);
      return 'admitted';
    }
    const { admitted, evicted } = this.queue.push(w.sourceKey, w);
    evicted?.overflow();
    return admitted ? 'queued' : 'overflow';
  }

  /** Takes a slot only if one is free now, never queueing (request mirroring). */
  tryTake(p: HttpProtocol): boolean {
    if (this.queue.size > 0 || !this.canStart(p)) return false;
    this.take(p);
    return true;
  }

  /** A queued waiter gave up (its client went away). */
  cancel(w: Waiter): void {
    this.queue.remove(w.sourceKey, w);
  }

  release(p: HttpProtocol): void {
    this.active--;
    if (p === 'http1') this.activeHttp1--;
    this.pump();
  }

  /** Envoy's max_retries: retries in flight at once across the cluster. */
  tryRetry(): boolean {
    if (this.retries >= this.limits.maxRetries) return false;
    this.retries++;
    return true;
  }

  retryDone(): void {
    this.retries--;
  }

  /** Refuses everything still queued (the cluster is going away). */
  drain(): void {
    this.queue.drain((w) => w.overflow());
  }

  private take(p: HttpProtocol): void {
    this.active++;
    if (p === 'http1') this.activeHttp1++;
  }

  private pump(): void {
    while (this.queue.size > 0 && this.canStart('http1')) {
      const w = this.queue.shift()!;
      this.take(w.protocol);
      w.admit();
    }
  }
}
