// One request through the L7 engine, whatever the protocol: route, fault injection,
// admission to the destination cluster, endpoint choice, tries with retries and back-off,
// per-try and route timeouts, outlier detection input, and telemetry. The HTTP/1.1 and
// HTTP/2 subclasses (http1.ts, http2.ts) move the bytes.
//
// Why one object per request with methods, and module-level event handlers in the
// subclasses: the request path allocates this object and little else (no closure per
// event, no promise per try unless a new HTTP/2 session must be dialled). For the same
// reason its timers are Node's own, unref()'ed, without a Clock's cancel handle per timer.
//
// Timeouts follow Envoy: the route timeout starts when the downstream request is complete
// and is never re-armed per try ("Retries count against the route timeout"; if it fires
// during back-off the client gets 504 UT); a per-try timeout runs from when the try is sent
// with the request complete until the response headers, and one that is not shorter than
// the route timeout is ignored.
//
// Retries replay the request body, so only a body kept whole within REPLAY_MAX_BYTES is
// retried ("Past that ... retries are disabled for the request").
import type { Destination, HttpRoute } from '../../control/api/snapshot-routing.js';
import type { Cluster, Host } from '../cluster/cluster.js';
import type { ConnInfo } from '../transport/connection.js';
import type { ClusterSet } from '../cluster/cluster-set.js';
import type { HttpProtocol, Waiter } from '../cluster/admission.js';
import { decideFault, grpcCode, grpcToHttp, httpToGrpc, NO_FAULT, type FaultDecision } from './fault-injection.js';
import { redirectLocation, rewritePath } from './header-ops.js';
import { ResponseFlag, withResponseFlag } from '../transport/response-flags.js';
import { backoffMs, NO_RETRY, retriableFailure, retriableResponse, type CompiledRetry, type TryFailure } from './retry.js';
import { matchRoute, type CompiledMatch, type RequestView } from './route-match.js';
import { routeTablesOf, type RouteEntry } from './route-table.js';
import { requestHash, type HashedRequest } from './request-hash.js';
import { sendMirror, type MirrorRequest } from './mirror.js';
import type { ProxyState } from '../state/proxy-state.js';
import { requestDone, type RequestRecord } from '../telemetry/request-record.js';
import { circuitBreakerOverflow } from '../telemetry/mesh-metrics.js';
import { startSpan, type SpanContext } from '../telemetry/tracing.js';
import type { HeaderOps } from '../../control/api/snapshot-routing.js';

/** A request body kept for replay must fit in this; a bigger one is streamed and never retried. */
export const REPLAY_MAX_BYTES = 64 * 1024;

/** What the exchanges of one proxy share (servers.ts implements it). */
export interface Engine {
  readonly clusters: ClusterSet;
  readonly random: () => number;
  /** monotonic ms */
  now(): number;
}

function timer(fn: () => void, ms: number): NodeJS.Timeout {
  const t = setTimeout(fn, ms);
  t.unref();
  return t;
}

type Phase = 'routing' | 'waiting' | 'trying' | 'backoff' | 'responding' | 'done';

export abstract class Exchange implements RequestView, Waiter, HashedRequest, RequestRecord {
  // RequestView
  method = '';
  path = '/';
  query = '';
  authority = '';
  scheme = 'http';
  port: number;
  sourceNamespace: string;
  sourceLabels: Record<string, string> | undefined;

  abstract readonly protocol: HttpProtocol;
  readonly sourceKey: string;
  grpc = false;
  protected phase: Phase = 'routing';
  protected startedAt: number;
  entry: RouteEntry | undefined;
  route: HttpRoute | undefined;
  block: CompiledMatch | null = null;
  dest: Destination | undefined;
  cluster: Cluster | undefined;
  retry: CompiledRetry = NO_RETRY;
  host: Host | undefined;
  protected tried: Host[] | undefined;
  /** tries made so far (the first one included) */
  protected tries = 0;
  /** the current try is a retry and holds one of the cluster's retries in flight (max_retries) */
  protected tryIsRetry = false;
  /** a retry was granted and holds its slot while it backs off and waits for admission */
  private retryReserved = false;
  protected tryStartedAt = 0;
  protected tryHeld = false;
  hash: number | undefined;
  /** a consistent-hash cookie to set on the response (httpCookie with a ttl, cookie absent) */
  setCookie: string | undefined;
  flags: string = ResponseFlag.None;
  status = 0;
  grpcStatus = '';
  reqBytes = 0;
  respBytes = 0;
  // body kept for replay
  protected kept: Buffer[] = [];
  protected keptBytes = 0;
  protected replayable = true;
  protected bodyEnded = false;
  /** the route mirrors and the body is not complete yet */
  private mirrorsPending = false;
  /** a fault was injected: no route timeout */
  protected timeoutsOff = false;
  protected routeTimer: NodeJS.Timeout | undefined;
  protected tryTimer: NodeJS.Timeout | undefined;
  protected backoffTimer: NodeJS.Timeout | undefined;
  /** new path (and query) to send upstream, when rewritten */
  upstreamPath: string | undefined;
  upstreamAuthority: string | undefined;
  /** counted in its source's requests in flight (transport/source-limits.ts) until finish() */
  private holdsShare = false;
  // RequestRecord (telemetry/request-record.ts): what the metrics, access log, span and tap read at the end
  durationMs = 0;
  startTimeMs = 0;
  upstreamServiceMs = -1;
  span: SpanContext | undefined;
  /** trace headers to set upstream (telemetry/tracing.ts): x-request-id, traceparent, B3 */
  traceOps: HeaderOps | undefined;
  get reporter(): 'source' {
    return 'source';
  }
  get protocolName(): string {
    return this.protocol === 'http2' ? 'HTTP/2' : 'HTTP/1.1';
  }
  get upstreamHost(): string {
    return this.host?.key ?? '';
  }
  get upstreamCluster(): string {
    return this.cluster?.name ?? '';
  }
  get routeName(): string {
    return this.route?.name ?? '';
  }
  get retries(): number {
    return this.tries > 1 ? this.tries - 1 : 0;
  }
  get downstreamRemote(): string {
    return `${this.conn.sourceAddress}:${this.conn.sourcePort}`;
  }

  constructor(
    protected readonly engine: Engine,
    readonly conn: ConnInfo,
    /** the state current when the request started: its routes and clusters, to the end */
    protected readonly state: ProxyState,
  ) {
    this.startedAt = engine.now();
    this.port = conn.target.port.port;
    this.sourceKey = conn.sourceKey;
    this.sourceNamespace = conn.source?.namespace ?? '';
    this.sourceLabels = conn.source?.labels;
  }

  abstract header(name: string): string | undefined;

  /**
   * `x-forwarded-for: <the client pod's IP>` added for an endpoint that is not a meshed pod:
   * no node proxy of its delivers to it, so it sees this node's address and learns its
   * client only from the header (a meshed pod sees the client's own address: inbound
   * delivery connects from it, ARCHITECTURE.md issue 10). Appended after what the client
   * sent, as Envoy appends the remote address.
   */
  protected clientAddressOps(host: Host): HeaderOps | undefined {
    if (host.workload?.meshed) return undefined;
    return { set: {}, add: { 'x-forwarded-for': this.conn.sourceAddress }, remove: [] } as unknown as HeaderOps;
  }

  // ---- what the protocol subclasses do ---------------------------------------------------
  /** Opens a try to `host` and writes the body kept so far (ends it when `bodyEnded`). */
  protected abstract sendTry(host: Host): void;
  /** The request as it goes upstream, for a mirror (headers without hop-by-hop ones and host). */
  protected abstract mirrorRequest(): Pick<MirrorRequest, 'raw' | 'h2'>;
  /** Writes one more body chunk to the open try; false = back-pressure (call resumeBody on drain). */
  protected abstract writeTry(chunk: Buffer): boolean;
  protected abstract endTryBody(): void;
  /** Abandons the open try (reset or destroy its upstream stream). */
  protected abstract abortTry(): void;
  /** Lets a retried response drain (HTTP/1.1 keeps the connection) or resets it. */
  protected abstract discardResponse(): void;
  /** Forwards the held upstream response head and streams its body; calls finish() at the end. */
  protected abstract commitResponse(): void;
  /** Answers locally (after routing or a failed try); calls finish(). */
  protected abstract reply(status: number, body: string, headers: Record<string, string> | undefined, grpcStatus: number): void;
  /** The response already started: cut the downstream stream. */
  protected abstract resetDownstream(): void;
  protected abstract pauseBody(): void;
  protected abstract resumeBody(): void;

  // ---- request start ---------------------------------------------------------------------
  /** Routes the request and starts it; the subclass has set method, path, query, authority. */
  start(): void {
    const trace = startSpan('client', this.conn.source, (n) => this.header(n));
    this.span = trace.span;
    this.traceOps = trace.ops;
    const share = this.conn.share;
    if (share) {
      // a source past its share of requests in flight is refused before anything is routed
      if (!share.tryRequest()) return this.localReply(503, ResponseFlag.UpstreamOverflow, 'overloaded: too many requests in flight from this source\n', { 'x-envoy-overloaded': 'true' });
      this.holdsShare = true;
    }
    const host = this.conn.target.service.hostname;
    const tables = routeTablesOf(this.state);
    const table = tables.table(host, this.sourceNamespace);
    const routes = table.http;
    for (let i = 0; i < routes.length; i++) {
      const block = matchRoute(routes[i]!.match, this);
      if (block !== undefined) return this.begin(routes[i]!, block);
    }
    // Gateway API: "If no matching rule is found, a 404 status code MUST be returned";
    // Istio: an unmatched request goes to the Service itself
    if (table.noMatch === 'notFound') return this.localReply(404, ResponseFlag.NoRoute, 'route not found\n');
    this.begin(tables.defaultEntry(host), null);
  }

  private begin(entry: RouteEntry, block: CompiledMatch | null): void {
    this.entry = entry;
    const route = entry.route;
    this.route = route;
    this.block = block;
    if (route.directResponse) return this.reply(route.directResponse.status, route.directResponse.body ?? '', undefined, -1);
    if (route.redirect) {
      const location = redirectLocation(route.redirect, this, block?.uri ?? undefined);
      return this.reply(route.redirect.status || 301, '', { location }, -1);
    }
    if (route.rewrite) {
      const p = rewritePath(this.path, route.rewrite, block?.uri ?? undefined, entry.uriRegex);
      if (p !== this.path) this.upstreamPath = this.query ? `${p}?${this.query}` : p;
      if (route.rewrite.authority) this.upstreamAuthority = route.rewrite.authority;
    }
    const dest = entry.picker.pick(this.engine.random);
    if (!dest) return this.localReply(503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream\n');
    this.dest = dest;
    const failStatus = dest.failStatus ?? 0;
    if (failStatus) return this.localReply(failStatus, ResponseFlag.NoClusterFound, 'backend not found\n');
    const cluster = this.engine.clusters.get(this.state, dest, this.port, this.conn.source?.namespace);
    if (!cluster) return this.localReply(503, ResponseFlag.NoClusterFound, 'no such destination\n');
    this.cluster = cluster;
    const hashPolicy = cluster.policy.loadBalancer.consistentHash;
    this.hash = hashPolicy ? requestHash(hashPolicy, this, this.engine.random) : undefined;
    const fault = decideFault(route.fault, this.engine.random);
    if (fault !== NO_FAULT) return this.injectFault(fault);
    this.retry = entry.retry;
    this.armRouteTimer();
    cluster.budget.deposit();
    this.mirrorsPending = (route.mirrors?.length ?? 0) > 0;
    if (this.bodyEnded) this.mirror();
    this.dispatch();
  }

  /** Sends the copies to the route's mirrors, once the body is complete and was kept whole. */
  private mirror(): void {
    if (!this.mirrorsPending) return;
    this.mirrorsPending = false;
    if (!this.replayable) return;
    for (const m of this.route!.mirrors) {
      if (!(m.percentage >= 100 || this.engine.random() * 100 < m.percentage)) continue;
      const cluster = this.engine.clusters.get(this.state, m.destination, this.port, this.conn.source?.namespace);
      if (!cluster) continue;
      sendMirror({
        conn: this.conn,
        cluster,
        random: this.engine.random,
        now: this.engine.now(),
        method: this.method,
        path: this.upstreamPath ?? (this.query ? `${this.path}?${this.query}` : this.path),
        authority: this.upstreamAuthority ?? this.authority,
        ...this.mirrorRequest(),
        body: this.kept,
      });
    }
  }

  private injectFault(f: FaultDecision): void {
    if (f.delayMs > 0) {
      this.flags = ResponseFlag.DelayInjected;
      this.phase = 'backoff';
      this.backoffTimer = timer(() => {
        this.backoffTimer = undefined;
        if (this.phase === 'done') return;
        this.injectFault({ ...f, delayMs: 0 });
      }, f.delayMs);
      return;
    }
    if (f.abortStatus > 0 || f.abortGrpc) {
      const g = f.abortGrpc ? grpcCode(f.abortGrpc) : -1;
      this.addFlag(ResponseFlag.FaultInjected);
      return this.reply(f.abortStatus || 200, 'fault filter abort\n', undefined, g);
    }
    // the delay was all: forward, without retries or timeouts ("With client-side faults,
    // timeouts and retries are not applied")
    this.retry = NO_RETRY;
    this.timeoutsOff = true;
    this.cluster!.budget.deposit();
    this.dispatch();
  }

  // ---- admission and tries ---------------------------------------------------------------
  private dispatch(): void {
    const cluster = this.cluster!;
    this.phase = 'waiting';
    const r = cluster.admission.request(this);
    if (r === 'admitted') this.admit();
    else if (r === 'overflow') this.overflow();
    else if (!this.bodyEnded) this.pauseBody();
  }

  /** Waiter: a slot is ours (held until releaseTry). */
  admit(): void {
    if (this.phase !== 'waiting') {
      // gave up while queued: hand the slot back
      this.cluster!.admission.release(this.protocol);
      return;
    }
    this.tryHeld = true;
    if (this.retryReserved) {
      this.retryReserved = false;
      this.tryIsRetry = true;
    }
    const cluster = this.cluster!;
    const host = cluster.pick({ hash: this.hash, random: this.engine.random, now: this.engine.now() }, this.tried);
    if (!host) {
      this.releaseTry(-1);
      return this.localReply(503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream\n');
    }
    this.host = host;
    this.tries++;
    (this.tried ??= []).push(host);
    cluster.begin(host);
    this.phase = 'trying';
    this.tryStartedAt = this.engine.now();
    this.sendTry(host);
    if (this.bodyEnded) this.armTryTimer();
    else this.resumeBody();
  }

  /** Waiter: refused by the circuit breaker (queue full, or evicted by a lighter source). */
  overflow(): void {
    if (this.phase !== 'waiting') return;
    circuitBreakerOverflow.inc({ cluster_name: this.cluster!.name });
    this.localReply(
      503,
      ResponseFlag.UpstreamOverflow,
      'upstream connect error or disconnect/reset before headers. reset reason: overflow\n',
      {
        'x-envoy-overloaded': 'true',
      },
    );
  }

  /** Frees the try's slot and endpoint. `rtt` < 0: no round trip to learn from. */
  protected releaseTry(rtt: number): void {
    this.clearTryTimer();
    if (!this.tryHeld) return;
    this.tryHeld = false;
    const cluster = this.cluster!;
    if (this.host) cluster.end(this.host, rtt);
    cluster.admission.release(this.protocol);
    if (this.tryIsRetry) {
      cluster.admission.retryDone();
      this.tryIsRetry = false;
    }
  }

  // ---- request body (called by the protocol's module-level stream handlers) ---------------
  onBody(chunk: Buffer): void {
    this.reqBytes += chunk.length;
    const trying = this.phase === 'trying' || this.phase === 'responding';
    if (this.replayable || !trying) {
      this.kept.push(chunk);
      this.keptBytes += chunk.length;
      if (this.keptBytes > REPLAY_MAX_BYTES) {
        this.replayable = false;
        if (!trying) this.pauseBody(); // hold at most the bound until a try takes it
      }
    }
    if (trying && !this.writeTry(chunk)) this.pauseBody();
    if (!this.replayable && trying && this.kept.length > 0) this.kept = [];
  }

  onBodyEnd(): void {
    this.bodyEnded = true;
    this.mirror();
    if (this.phase === 'trying') {
      this.endTryBody();
      this.armTryTimer();
    }
    this.armRouteTimer();
  }

  /** The chunks a new try must write first (the whole body so far when replayable). */
  protected takeBody(): Buffer[] {
    const k = this.kept;
    if (!this.replayable) this.kept = [];
    return k;
  }

  // ---- timers ----------------------------------------------------------------------------
  /** The route timeout starts once the request is complete (body received) and is armed once. */
  private armRouteTimer(): void {
    const t = this.route?.timeoutMs ?? 0;
    if (t > 0 && this.bodyEnded && !this.routeTimer && !this.timeoutsOff && this.phase !== 'done') {
      this.routeTimer = timer(() => this.onRouteTimeout(), t);
    }
  }

  private armTryTimer(): void {
    const per = this.retry.perTryTimeoutMs;
    const route = this.route?.timeoutMs ?? 0;
    if (per > 0 && (route === 0 || per < route) && !this.tryTimer) {
      this.tryTimer = timer(() => this.onTryTimeout(), per);
    }
  }

  private clearTryTimer(): void {
    if (this.tryTimer) clearTimeout(this.tryTimer);
    this.tryTimer = undefined;
  }

  private onTryTimeout(): void {
    this.tryTimer = undefined;
    if (this.phase !== 'trying') return;
    this.abortTry();
    if (this.host) this.cluster!.onLocalFailure(this.host, 'timeout');
    this.failTry('per-try-timeout', ResponseFlag.UpstreamRequestTimeout, 504);
  }

  private onRouteTimeout(): void {
    this.routeTimer = undefined;
    const s = this.phase;
    if (s === 'done') return;
    this.addFlag(ResponseFlag.UpstreamRequestTimeout);
    if (s === 'responding') {
      this.abortTry();
      this.releaseTry(-1);
      this.resetDownstream();
      return this.finish();
    }
    if (s === 'trying') {
      this.abortTry();
      if (this.host) this.cluster!.onLocalFailure(this.host, 'timeout');
      this.releaseTry(-1);
    }
    if (s === 'waiting') this.cluster?.admission.cancel(this);
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    // a retry given up in its back-off hands its max_retries slot back before the 504 is
    // written: the client may send its next request before this exchange's finish()
    this.releaseRetryReservation();
    this.reply(504, 'upstream request timeout\n', undefined, -1);
  }

  // ---- outcomes of a try -----------------------------------------------------------------
  /**
   * The upstream's response head (for gRPC that retries on status: with the grpc-status, from
   * a trailers-only response or trailers before any message). Returns true when the response
   * is forwarded, false when it is discarded for a retry.
   */
  protected onResponseHead(status: number, grpcStatus: number): boolean {
    this.clearTryTimer();
    const cluster = this.cluster!;
    const rtt = this.engine.now() - this.tryStartedAt;
    this.upstreamServiceMs = rtt;
    if (this.host) cluster.onResponse(this.host, grpcStatus >= 0 ? grpcToHttp(grpcStatus) : status, rtt);
    if (this.retry.attempts > 0 && retriableResponse(this.retry, status, grpcStatus)) {
      if (this.mayRetry()) {
        this.discardResponse();
        this.releaseTry(rtt);
        this.scheduleRetry();
        return false;
      }
    }
    this.status = status;
    if (grpcStatus >= 0) this.grpcStatus = String(grpcStatus);
    this.phase = 'responding';
    this.commitResponse();
    return true;
  }

  /** The try failed before a response head: connect failure, reset, refused stream. */
  protected onTryFailure(kind: TryFailure, flag: string): void {
    if (this.phase !== 'trying') return;
    if (this.host) {
      if (kind === 'connect-failure') this.cluster!.onLocalFailure(this.host, 'connect-failure');
      else if (kind !== 'per-try-timeout') this.cluster!.onLocalFailure(this.host, 'reset');
    }
    this.failTry(kind, flag, 503);
  }

  private failTry(kind: TryFailure, flag: string, status: number): void {
    this.releaseTry(-1);
    if (this.retry.attempts > 0 && retriableFailure(this.retry, kind) && this.mayRetry()) return this.scheduleRetry();
    this.addFlag(flag);
    const body =
      kind === 'per-try-timeout'
        ? 'upstream request timeout\n'
        : `upstream connect error or disconnect/reset before headers. reset reason: ${kind === 'connect-failure' ? 'connection failure' : kind}\n`;
    this.reply(status, body, undefined, -1);
  }

  /**
   * Another try is allowed: attempts left (else URX), the body can be replayed, the
   * cluster's max_retries and retry budgets allow it (else, as Envoy's retry overflow, UO).
   */
  private mayRetry(): boolean {
    if (this.tries > this.retry.attempts) {
      this.addFlag(ResponseFlag.UpstreamRetryLimitExceeded);
      return false;
    }
    if (!this.replayable) return false;
    if (!this.cluster!.reserveRetry()) {
      this.addFlag(ResponseFlag.UpstreamOverflow);
      return false;
    }
    this.retryReserved = true;
    return true;
  }

  private scheduleRetry(): void {
    this.phase = 'backoff';
    this.host = undefined;
    const wait = backoffMs(this.retry, this.tries, this.engine.random);
    this.backoffTimer = timer(() => {
      this.backoffTimer = undefined;
      if (this.phase === 'backoff') this.retryDispatch();
    }, wait);
  }

  private retryDispatch(): void {
    const cluster = this.cluster!;
    this.phase = 'waiting';
    const r = cluster.admission.request(this);
    if (r === 'admitted') this.admit();
    else if (r === 'overflow') this.overflow(); // finish() hands the reserved retry back
  }

  /** The response was fully forwarded. */
  protected onResponseDone(): void {
    if (this.phase === 'done') return;
    this.releaseTry(this.engine.now() - this.tryStartedAt);
    this.finish();
  }

  /** The downstream request/stream closed: the client went away unless the exchange finished. */
  onClose(): void {
    if (this.phase !== 'done') this.onDownstreamGone();
  }

  protected onDownstreamGone(): void {
    const s = this.phase;
    if (s === 'done') return;
    this.addFlag(ResponseFlag.DownstreamConnectionTermination);
    if (s === 'trying' || s === 'responding') {
      this.abortTry();
      this.releaseTry(-1);
    } else if (s === 'waiting') {
      this.cluster?.admission.cancel(this);
    }
    this.finish();
  }

  protected localReply(status: number, flag: string, body: string, headers?: Record<string, string>): void {
    this.addFlag(flag);
    this.reply(status, body, headers, -1);
  }

  protected addFlag(flag: string): void {
    this.flags = withResponseFlag(this.flags, flag);
  }

  /** The gRPC status a local reply carries for an HTTP status (gRPC's own mapping). */
  protected grpcFor(status: number, explicit: number): number {
    return explicit >= 0 ? explicit : httpToGrpc(status);
  }

  /** Frees the max_retries slot reserved for a retry that will not be made. */
  private releaseRetryReservation(): void {
    if (!this.retryReserved) return;
    this.retryReserved = false;
    this.cluster?.admission.retryDone();
  }

  /** Ends the exchange: timers, and the one telemetry record. */
  protected finish(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    if (this.tryHeld) this.releaseTry(-1); // every path should have released it; never leak a slot
    if (this.holdsShare) {
      this.holdsShare = false;
      this.conn.share!.requestDone();
    }
    if (this.routeTimer) clearTimeout(this.routeTimer);
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.clearTryTimer();
    this.routeTimer = this.backoffTimer = undefined;
    this.releaseRetryReservation();
    this.kept = [];
    const labels = this.engine.clusters.requestLabels(this.state, this.conn, this.cluster?.service ?? this.conn.target.service, this.host, this.grpc);
    this.durationMs = this.engine.now() - this.startedAt;
    this.startTimeMs = Date.now() - this.durationMs;
    this.grpcStatus = this.grpc ? this.grpcStatus || '-' : '';
    requestDone(labels, this);
  }
}
