// Delivery of an inbound connection to a pod on this node, after the proxy accepted it
// (from an HBONE tunnel on 15008, or captured plaintext on 15006). This is where inbound
// policy applies, in this order:
// 1. PeerAuthentication: plaintext (`security: 'none'`) to a port whose mode is STRICT is
//    refused; PERMISSIVE (and DISABLE) let it through, reported as
//    connection_security_policy="none".
// 2. AuthorizationPolicy at stream accept (L4): a denied connection is refused (flag DENY).
// 3. For a workload whose enforced policies test HTTP attributes, the stream is parsed as
//    HTTP/1.1, or as h2c when it starts with the HTTP/2 preface (gRPC), and every request
//    is authorised (inbound-http.ts): denied requests get 403 "RBAC: access denied" (gRPC:
//    grpc-status 7), allowed ones reach the pod. A stream that turns out to be neither is
//    authorised as TCP (fail-safe) instead. On a port declared HTTP (request telemetry) a
//    stream is served the same way, with no policy to meet — or, when it came over HBONE
//    and no trace collector is configured, relayed untouched and observed as HTTP/1.1
//    (inbound-observed.ts). Every other stream is a byte pipe.
// 4. Every delivered connection stays registered (authorized-connections.ts) until it
//    closes: a policy applied later is checked against it, and closes it if it no longer
//    admits it; requests on a parsed stream are authorized against the policy in force.
// Telemetry: reporter="destination" istio_tcp_* metrics for every connection (refused ones
// with response_flags DENY), and nodemesh_agent_authorization_denials_total by policy.
// Nothing is logged per connection except at debug level.
// Timeouts (transport/timeouts.ts): a byte pipe closes after the TCP idle timeout; a stream
// authorised per request has the head timeout to send its first line (else it is authorised
// as TCP, as past Istio's protocol sniffing timeout), then each request its head timeout.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { logger } from '../../common/log.js';
import type { Service, Workload } from '../../control/api/snapshot.js';
import { authorizeConnection, SecurityIndex, type AuthorizationResult, type L4Attributes } from '../policy/authorization.js';
import { serveH2cInbound, serveHttpInbound } from './inbound-http.js';
import { observeHttp1 } from './inbound-observed.js';
import { observeHttp2 } from './inbound-observed-h2.js';
import { tracingConfigured } from '../telemetry/tracing.js';
import { authorizedInbound, resetDownstream, type AuthorizedConnection, type AuthorizedConnections } from './authorized-connections.js';
import { authorizationAudits, authorizationDenials, authorizationDryRun, tcpLabelsDestination } from '../telemetry/metrics.js';
import { acceptsPlaintext } from '../policy/peer-authentication.js';
import { ResponseFlag } from '../transport/response-flags.js';
import { Flow, FlowSet } from '../transport/flow.js';
import { relay, type RelayTap } from '../transport/relay.js';
import { classifyRequestLine, declaredProtocol, sniffWithin } from '../transport/protocol-detect.js';
import { inboundTelemetry, type InboundTelemetry } from '../telemetry/inbound-requests.js';
import { DEFAULT_TIMEOUTS, type ProxyTimeouts } from '../transport/timeouts.js';
import { joinHostPort } from '../../common/host-port.js';
// type-only: connector.ts loads the ffi-rs socket helpers, which inbound delivery does not need
import type { UpstreamConnector, UpstreamRequest } from '../transport/connector.js';

const log = logger('agent/inbound');

export interface InboundConnection {
  /** the local pod the connection is for */
  destination: Workload;
  /** the pod's port */
  port: number;
  /** peer address as carried (HBONE `forwarded: for=`) or seen (plaintext) */
  sourceIp: string;
  sourcePort: number;
  /** verified SPIFFE ID of the peer (mTLS), undefined for plaintext */
  sourcePrincipal: string | undefined;
  /** how it arrived: mutual_tls (HBONE) or none (plaintext) */
  security: 'mutual_tls' | 'none';
}

export interface InboundOptions {
  /**
   * The policy in force: `SecurityIndex.of(snapshot.security)` of the current snapshot.
   * Without it no PeerAuthentication or AuthorizationPolicy applies (PERMISSIVE, allow).
   */
  security?: SecurityIndex;
  /** for telemetry: the workload the connection comes from, when known (by its IP) */
  sourceWorkload?: Workload;
  /** for telemetry: the Service the destination port serves, when known */
  service?: Service;
  /** the phases' timeouts (transport/timeouts.ts defaults) */
  timeouts?: ProxyTimeouts;
  /**
   * Connect to the pod from this address (the client's, transparently) instead of the
   * node's: clientAddress() of the connection. The connector decides whether it can.
   */
  transparentSource?: string;
  /** where the connection is registered for later policies (default: this process's, authorizedInbound) */
  connections?: AuthorizedConnections;
}

export type InboundResult = { delivered: true } | { delivered: false; flag: string; reason: string };

let warnedNoPolicy = false;

/** The connections delivered to this node's pods, reporter="destination". */
const delivered = new FlowSet();

/**
 * Applies the inbound policy and connects `stream` to the pod. Resolves once the pod
 * connection is up (delivered) or the connection is refused; on refusal the caller answers
 * its peer (HBONE: a non-200 status; plaintext: a reset). After delivery, refusals that
 * need the stream's content (a request denied at L7, a non-HTTP stream denied by the TCP
 * fallback) are answered here: 403 per request, or the stream is closed.
 */
export async function deliverInbound(
  stream: Duplex,
  c: InboundConnection,
  connector: UpstreamConnector,
  opts: InboundOptions = {},
): Promise<InboundResult> {
  if (!opts.security && !warnedNoPolicy) {
    warnedNoPolicy = true;
    log.warn('inbound delivery without a security index: no PeerAuthentication or AuthorizationPolicy is enforced');
  }
  const policy = (opts.security ?? NO_SECURITY).forWorkload(c.destination.uid);
  // the stream has no byte counters of its own (an HBONE CONNECT stream): the flow counts what passes
  const flow = new Flow(
    delivered,
    tcpLabelsDestination(opts.sourceWorkload, c.sourcePrincipal, opts.service, c.destination, c.security, ResponseFlag.None),
    stream,
    'passing',
    c.destination,
  );
  stream.on('error', () => {}); // handled by the pipe, or ends the flow with the stream

  // "STRICT: Connection is an mTLS tunnel (TLS with client cert must be presented)."
  if (c.security === 'none' && !acceptsPlaintext(policy, c.port)) {
    authorizationDenials.inc({ reason: 'mtls_strict', policy: policy.peerAuthentications.at(-1) ?? '-', layer: 'tcp' });
    flow.close(ResponseFlag.Deny);
    return refused(
      `plaintext to ${c.destination.uid} port ${c.port} refused: its mTLS mode is STRICT (PeerAuthentication ${policy.peerAuthentications.join(', ')})`,
    );
  }

  const l4: L4Attributes = {
    sourcePrincipal: c.sourcePrincipal,
    sourceIp: c.sourceIp,
    destinationIp: c.destination.ip,
    destinationPort: c.port,
    mtls: c.security === 'mutual_tls',
  };
  const accept = authorizeConnection(policy, l4);
  report(accept, 'tcp');
  if (accept.decision === 'deny') {
    flow.close(ResponseFlag.Deny);
    return refused(denialReason(c, accept));
  }

  // registered before the pod connection is up: a policy applied meanwhile closes it too
  const connections = opts.connections ?? authorizedInbound;
  const authorized = connections.add({
    workload: c.destination.uid,
    port: c.port,
    l4,
    plaintext: c.security === 'none',
    mode: accept.needsL7 ? 'requests' : 'pipe',
    policy,
    deny: () => {
      flow.close(ResponseFlag.Deny);
      resetDownstream(stream);
    },
  });
  // one close listener for the stream's life (every held connection carries it): set once delivered
  let closeDelivered: (() => void) | undefined;
  stream.once('close', () => {
    connections.delete(authorized);
    closeDelivered?.();
  });

  let pod: Duplex;
  try {
    pod = await connector.connect(toPod(c, opts.transparentSource));
  } catch (err) {
    connections.delete(authorized);
    // an UpstreamError carries the Envoy flag that explains the failure
    const carried = (err as { flag?: unknown }).flag;
    const flag = typeof carried === 'string' ? carried : ResponseFlag.UpstreamConnectionFailure;
    flow.close(flag);
    return { delivered: false, flag, reason: (err as Error).message };
  }
  if (stream.destroyed) {
    pod.destroy();
    flow.close(ResponseFlag.DownstreamConnectionTermination);
    return {
      delivered: false,
      flag: ResponseFlag.DownstreamConnectionTermination,
      reason: 'the peer went away before the pod connection was up',
    };
  }
  // requests are read where a policy needs them, and on ports declared HTTP for the
  // destination's request metrics (reporter="destination"); other streams stay byte pipes,
  // whose bytes the relay counts
  const http = declaredHttp(opts.service, c.port);
  const piped = authorized.mode === 'pipe' && !http;
  // requests only counted, nothing added to them: HTTP/1.1 is observed, not served
  // (inbound-observed.ts says when and why); the x-request-id of a request that comes without
  // one is the source proxy's to add, and only a mesh proxy sends over HBONE
  const observable = authorized.mode === 'pipe' && http && c.security === 'mutual_tls' && !tracingConfigured();
  if (piped || observable) flow.relayed();
  // delivered: counted until both sides are closed
  flow.open();
  let open = 2;
  const onClose = () => {
    if (--open === 0) flow.close();
  };
  closeDelivered = () => {
    onClose();
    pod.destroy();
  };
  pod.once('close', onClose);
  const timeouts = opts.timeouts ?? DEFAULT_TIMEOUTS;
  if (piped) {
    flow.logAs = {
      subject: c.destination,
      upstreamHost: joinHostPort(c.destination.ip, c.port),
      downstreamRemote: joinHostPort(c.sourceIp, c.sourcePort),
    };
    pipe(stream, pod, timeouts.tcpIdleMs);
  } else {
    const telemetry = http
      ? inboundTelemetry(opts.sourceWorkload, c.sourcePrincipal, opts.service, c.destination, c.security, c.port)
      : undefined;
    if (!observable) authorized.mode = 'requests';
    void serveL7(
      stream,
      pod,
      c,
      authorized,
      () => connector.connect(toPod(c, opts.transparentSource)),
      flow,
      timeouts,
      telemetry,
      observable,
    );
  }
  return { delivered: true };
}

/** The stream of a workload with HTTP rules: HTTP/1.x or h2c per request, anything else as TCP. */
async function serveL7(
  stream: Duplex,
  pod: Duplex,
  c: InboundConnection,
  authorized: AuthorizedConnection,
  connect: () => Promise<Duplex>,
  flow: Flow,
  timeouts: ProxyTimeouts,
  telemetry: InboundTelemetry | undefined,
  observable: boolean,
): Promise<void> {
  const sniffed = await sniffWithin(stream, timeouts.requestHeadersMs, classifyRequestLine);
  if (sniffed === undefined) return; // closed before a byte
  // no whole first line in time (a client-first protocol that waits, a slow line): TCP's rules
  const protocol = sniffed === 'timeout' ? 'tcp' : sniffed;
  if (observable && protocol !== 'tcp') {
    // HTTP/1.1 or h2c with nothing to decide or add per request: relayed, its requests
    // observed (inbound-observed.ts, inbound-observed-h2.ts); idle for the HTTP idle timeout
    // (a slow request head is the pod's server's to time out)
    const observe = protocol === 'http2' ? observeHttp2 : observeHttp1;
    const observer = observe(stream, pod, { telemetry: telemetry!, downstreamRemote: c.sourceIp });
    pipe(stream, pod, timeouts.httpIdleMs, observer.requests, observer.responses);
    return;
  }
  if (protocol !== 'tcp') {
    // every request meets the policy in force when it arrives
    const o = {
      policy: () => authorized.policy,
      l4: authorized.l4,
      first: pod,
      connect,
      onDecision: requestDecision,
      timeouts,
      telemetry,
      authority: `http://${joinHostPort(c.destination.ip, c.port)}`,
    };
    if (protocol === 'http2') await serveH2cInbound(stream, o);
    else await serveHttpInbound(stream, o);
    return;
  }
  // neither HTTP/1.x nor h2c (TLS, a binary protocol): Istio's TCP rules apply
  authorized.mode = 'tcp';
  const tcp = authorizeConnection(authorized.policy, authorized.l4, { protocol: 'tcp' });
  report(tcp, 'tcp');
  if (tcp.decision === 'deny') {
    log.debug({ workload: c.destination.uid, reason: denialReason(c, tcp) }, 'non-HTTP stream denied');
    pod.destroy();
    stream.destroy();
    flow.close(ResponseFlag.Deny);
    return;
  }
  pipe(stream, pod, timeouts.tcpIdleMs);
}

/** The Service port that reaches the pod's `port` is declared HTTP, HTTP/2 or gRPC (Istio's port naming or appProtocol). */
function declaredHttp(service: Service | undefined, port: number): boolean {
  if (!service) return false;
  for (const p of service.ports) {
    if (p.targetPort !== port && !p.endpoints.some((e) => e.port === port)) continue;
    const d = declaredProtocol(p);
    return d === 'http' || d === 'http2';
  }
  return false;
}

/**
 * The address the pod should see as its client, when the proxy can connect from it
 * (ARCHITECTURE.md, issue 10: applications see their real client): for plaintext, the
 * peer the kernel handed over (its packets came from that address); for a tunnel, the
 * address it claims (`forwarded: for=`) only when that address is a workload running as
 * the principal the peer proved (`proven`, hbone/server.ts provenSourceWorkload), so a
 * node can never make a pod see an address its certificate does not own. Undefined —
 * the node's address, as before — for IPv6, an unproven claim, and a pod calling itself
 * (a packet from its own address arriving on its eth0 is a martian to its kernel).
 */
export function clientAddress(c: InboundConnection, proven: Workload | undefined): string | undefined {
  const ip = c.security === 'none' ? c.sourceIp : proven?.ip;
  if (!ip || !net.isIPv4(ip) || ip === c.destination.ip) return undefined;
  return ip;
}

/** A connection from the node proxy to the pod, on behalf of the peer. */
function toPod(c: InboundConnection, from: string | undefined): UpstreamRequest {
  return {
    source: undefined,
    sourceAddress: c.sourceIp,
    sourcePort: c.sourcePort,
    ip: c.destination.ip,
    port: c.port,
    destination: c.destination,
    ...(from !== undefined ? { transparentSource: from } : {}),
  };
}

function requestDecision(r: AuthorizationResult): void {
  report(r, 'http');
}

/** Counts denials, AUDIT and dry-run matches of one decision. */
function report(r: AuthorizationResult, layer: 'tcp' | 'http'): void {
  if (r.decision === 'deny')
    authorizationDenials.inc({ reason: r.reason === 'deny-policy' ? 'deny_policy' : 'no_allow_match', policy: r.policy ?? '-', layer });
  for (const p of r.audited) authorizationAudits.inc({ policy: p, layer });
  for (const p of r.dryRunMatched) authorizationDryRun.inc({ policy: p, layer });
}

function denialReason(c: InboundConnection, r: AuthorizationResult): string {
  const who = c.sourcePrincipal ?? `plaintext from ${c.sourceIp}`;
  return r.reason === 'deny-policy'
    ? `${who} to ${c.destination.uid} port ${c.port} denied by AuthorizationPolicy ${r.policy}`
    : `${who} to ${c.destination.uid} port ${c.port} denied: ALLOW policies exist for the workload and none matches`;
}

function refused(reason: string): InboundResult {
  return { delivered: false, flag: ResponseFlag.Deny, reason };
}

/**
 * Both ways; half-close is carried; an error on either side resets the other; no byte
 * either way for `idleMs` closes both (the pod socket's timer sees both directions). Taps
 * (an observer's) see what is read from either side on its way.
 */
function pipe(stream: Duplex, pod: Duplex, idleMs: number, fromStream?: RelayTap, fromPod?: RelayTap): void {
  stream.on('error', () => pod.destroy());
  pod.on('error', () => stream.destroy());
  relay(stream, pod, fromStream, fromPod);
  (pod as Duplex & { setTimeout?: (ms: number, cb: () => void) => unknown }).setTimeout?.(idleMs, () => {
    pod.destroy();
    stream.destroy();
  });
}

const NO_SECURITY = SecurityIndex.empty();
