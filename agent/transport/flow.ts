// One connection's Istio TCP telemetry, kept here for every connection the node proxy
// carries: a client's connection through the outbound proxy and each connection the L7
// engine opens to an endpoint (reporter="source"), and each connection delivered to a pod
// of this node (reporter="destination"). A flow counts istio_tcp_connections_opened_total
// when it opens and _closed_total when it closes, under the labels that describe it, and
// adds its bytes to istio_tcp_received_bytes_total (the request direction, client →
// upstream) and istio_tcp_sent_bytes_total (the response direction). Bytes are added when
// it closes and, while it is open, every few seconds and at every scrape, so that a
// long-lived connection shows its traffic before it ends.
//
// The L7 engine's connections are reported beside its requests: in Istio ambient ztunnel
// reports the connections and the waypoint the requests; the node proxy is both, and each
// pooled upstream connection carries one source pod's requests to one endpoint, so its
// labels are exact.
//
// Labels are built once, when the connection is described, never per chunk. Byte counts
// are read from the counters a socket keeps anyway (bytesRead, bytesWritten); only on a
// stream that keeps none (an HBONE CONNECT stream) does the flow count what passes.
import type { Duplex } from 'node:stream';
import {
  onScrape,
  tcpConnectionsClosed,
  tcpConnectionsOpened,
  tcpReceivedBytes,
  tcpSentBytes,
  type IstioLabels,
} from '../telemetry/metrics.js';
import { connectionClosed, connectionOpened } from '../telemetry/mesh-metrics.js';
import { logConnection } from '../telemetry/access-log.js';
import { metricLabels, metricsRule, type Subject } from '../telemetry/telemetry-policy.js';
import { ResponseFlag } from './response-flags.js';
import { relayedBytes } from './relay.js';

/** How often the bytes of open flows are brought up to date between scrapes. */
export const FLUSH_INTERVAL_MS = 5_000;

/**
 * Where a flow's byte counts come from:
 * - 'client': the client's socket; what it read was received, what it wrote was sent.
 * - 'upstream': the proxy's stream to an endpoint; what it wrote was received from the
 *   client, what it read is sent back. A stream without byte counters reports none.
 * - 'passing': the client's side, a stream without byte counters; the flow counts the
 *   chunks read from it and written to it from open() on.
 * - 'relayed': the same stream, joined to the other side by relay.ts, which counts what it
 *   moves: the flow reads the relay's counts and adds nothing per chunk (set by relayed()).
 */
export type ByteCounters = 'client' | 'upstream' | 'passing' | 'relayed';

type Counted = Duplex & { readonly bytesRead?: number; readonly bytesWritten?: number };

/** A connection that is an access-log line of its own (an L4 connection, not one carrying logged requests). */
export interface ConnectionLog {
  /** the reporter's workload, whose Telemetry decides */
  subject: Subject;
  upstreamHost: string;
  downstreamRemote: string;
}

export class Flow {
  private state: 'described' | 'open' | 'closed' = 'described';
  /** set by the proxy when the connection gets an access-log line (telemetry/access-log.ts) */
  logAs: ConnectionLog | undefined;
  private openedAt = 0;
  /** bytes already added to the counters */
  private countedIn = 0;
  private countedOut = 0;
  /** 'passing': bytes read from and written to the stream */
  private passedIn = 0;
  private passedOut = 0;

  constructor(
    private readonly set: FlowSet,
    /** Istio's labels of the connection; close() sets response_flags */
    readonly labels: IstioLabels,
    private readonly stream: Duplex,
    private counters: ByteCounters,
    /** the reporter's workload, whose Telemetry metrics overrides apply (telemetry-policy.ts) */
    private readonly subject: Subject = undefined,
  ) {}

  /** The labels `metric` is counted with now (undefined: a Telemetry disabled it). */
  private as(metric: 'TCP_OPENED_CONNECTIONS' | 'TCP_CLOSED_CONNECTIONS' | 'TCP_SENT_BYTES' | 'TCP_RECEIVED_BYTES'): IstioLabels | undefined {
    return metricLabels(metricsRule(this.subject, this.labels.reporter === 'destination' ? 'destination' : 'source'), metric, this.labels);
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** A 'passing' flow whose stream relay.ts will join: its bytes are the relay's counts. Before open(). */
  relayed(): void {
    if (this.state === 'described' && this.counters === 'passing') this.counters = 'relayed';
  }

  /** Counts the flow as opened; its bytes are brought up to date with its set's until it closes. */
  open(): void {
    if (this.state !== 'described') return;
    this.state = 'open';
    this.openedAt = performance.now();
    this.countOpened();
    connectionOpened(this.labels.reporter);
    if (this.counters === 'passing') this.countPassing();
    this.set.add(this);
  }

  private countOpened(): void {
    const l = this.as('TCP_OPENED_CONNECTIONS');
    if (l) tcpConnectionsOpened.inc(l);
  }

  /** Bytes received from the client so far (the request direction). */
  get receivedBytes(): number {
    const s = this.stream as Counted;
    if (this.counters === 'client') return s.bytesRead ?? 0;
    if (this.counters === 'upstream') return s.bytesWritten ?? 0;
    if (this.counters === 'relayed') return relayedBytes(s).read;
    return this.passedIn;
  }

  /** Bytes sent to the client so far (the response direction). */
  get sentBytes(): number {
    const s = this.stream as Counted;
    if (this.counters === 'client') return s.bytesWritten ?? 0;
    if (this.counters === 'upstream') return s.bytesRead ?? 0;
    if (this.counters === 'relayed') return relayedBytes(s).written;
    return this.passedOut;
  }

  /** Adds the bytes not counted yet. */
  flush(): void {
    const received = this.receivedBytes;
    const sent = this.sentBytes;
    if (received > this.countedIn) {
      const l = this.as('TCP_RECEIVED_BYTES');
      if (l) tcpReceivedBytes.inc(l, received - this.countedIn);
      this.countedIn = received;
    }
    if (sent > this.countedOut) {
      const l = this.as('TCP_SENT_BYTES');
      if (l) tcpSentBytes.inc(l, sent - this.countedOut);
      this.countedOut = sent;
    }
  }

  /**
   * Counts the flow as closed, with `flag` (an Envoy response flag) when it failed. A flow
   * that never opened (a refused connection) is counted as opened and closed, both with its
   * flag, as Istio reports refusals.
   */
  close(flag: string = ResponseFlag.None): void {
    if (this.state === 'closed') return;
    if (flag !== ResponseFlag.None) this.labels.response_flags = flag;
    if (this.state === 'described') this.countOpened();
    else connectionClosed(this.labels.reporter);
    this.state = 'closed';
    this.flush();
    const closed = this.as('TCP_CLOSED_CONNECTIONS');
    if (closed) tcpConnectionsClosed.inc(closed);
    this.set.delete(this);
    if (this.logAs && this.openedAt > 0) {
      const durationMs = performance.now() - this.openedAt;
      logConnection(this.logAs.subject, this.labels, {
        startTimeMs: Date.now() - durationMs,
        durationMs,
        received: this.receivedBytes,
        sent: this.sentBytes,
        upstreamHost: this.logAs.upstreamHost,
        downstreamRemote: this.logAs.downstreamRemote,
      });
    }
  }

  /**
   * Counts what is read from the stream and written to it. Bytes given back to it (unshift,
   * after protocol detection read them) are read again: they are taken off here, so that
   * each byte counts once.
   */
  private countPassing(): void {
    const s = this.stream;
    s.on('data', (chunk: Buffer) => (this.passedIn += chunk.length));
    const unshift = s.unshift;
    s.unshift = (chunk: Buffer | string, encoding?: BufferEncoding) => {
      this.passedIn -= typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.length;
      unshift.call(s, chunk, encoding);
    };
    const write = s.write as (...args: unknown[]) => boolean;
    s.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      this.passedOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      return write.call(s, chunk, ...rest);
    }) as Duplex['write'];
  }
}

/**
 * The open flows of one owner (the outbound proxy, the inbound delivery, the L7 engine's
 * upstream connections), their bytes brought up to date every `flushIntervalMs` (0: at
 * scrapes only) and at every scrape. The timer starts with the first flow and never keeps
 * the process alive.
 */
export class FlowSet<F extends Flow = Flow> implements Iterable<F> {
  private readonly flows = new Set<F>();
  private timer: NodeJS.Timeout | undefined;
  private readonly offScrape: () => void;
  private closed = false;

  constructor(private readonly flushIntervalMs = FLUSH_INTERVAL_MS) {
    this.offScrape = onScrape(() => this.flush());
  }

  get size(): number {
    return this.flows.size;
  }

  [Symbol.iterator](): IterableIterator<F> {
    return this.flows.values();
  }

  /** Flow.open() */
  add(f: F): void {
    this.flows.add(f);
    if (!this.timer && !this.closed && this.flushIntervalMs > 0) {
      this.timer = setInterval(() => this.flush(), this.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Flow.close() */
  delete(f: F): void {
    this.flows.delete(f);
  }

  flush(): void {
    for (const f of this.flows) f.flush();
  }

  /** Stops flushing; flows still open keep their accounting until they close. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.offScrape();
  }
}

/** Accounts `stream` as one open flow of `set` until the stream closes. */
export function trackUntilClose(set: FlowSet, stream: Duplex, labels: IstioLabels, counters: ByteCounters, subject?: Subject): Flow {
  const flow = new Flow(set, labels, stream, counters, subject);
  flow.open();
  stream.once('close', () => flow.close());
  return flow;
}
