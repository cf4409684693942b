// The inbound connections this process delivered to its pods after authorizing them, kept
// so that a policy that arrives later applies to them too, as ztunnel's connection manager
// and policy watcher do: "connection … closed because it's no longer allowed after a policy
// update". Whenever a snapshot's security section is applied (agent.ts, and each worker in
// workers/worker-main.ts), every open connection is authorized again against it:
// - plaintext to a port whose mTLS mode is now STRICT is closed (PeerAuthentication);
// - a connection the new AuthorizationPolicies deny at L4 (a DENY that matches, or ALLOWs
//   of which none can match any more) is closed;
// - a connection whose requests are parsed keeps going, and each later request is
//   authorized against the policy in force when it arrives (`policy` below), not the one
//   of the accept;
// - a byte pipe whose new policy needs HTTP attributes cannot start parsing mid-stream: it
//   is judged as TCP (Istio's fail-safe), so a DENY with HTTP fields closes it and the
//   client's next connection is parsed.
// Closing resets the downstream (RST on a socket, RST_STREAM CONNECT_ERROR on an HBONE
// stream; the pod side follows) and counts nodemesh_agent_connections_closed_by_policy_total;
// the delivered connection's istio_tcp_connections_closed_total gets response_flags DENY.
// The per-connection cost is a Set add at accept and a delete at close; AUDIT and dry-run
// policies are reported at accept and per request only, never again here.
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { logger } from '../../common/log.js';
import { authorizeConnection, type ConnectionResult, type L4Attributes, type SecurityIndex, type WorkloadPolicy } from '../policy/authorization.js';
import { acceptsPlaintext } from '../policy/peer-authentication.js';
import { connectionsClosedByPolicy } from '../telemetry/metrics.js';

const log = logger('agent/authorized-connections');

/**
 * How the connection's traffic is judged: `requests` (parsed, or being sniffed: every
 * request is authorized), `pipe` (decided at L4, bytes pass unread), `tcp` (not HTTP:
 * Istio's TCP rules).
 */
export type AuthorizedMode = 'requests' | 'pipe' | 'tcp';

export interface AuthorizedConnection {
  readonly workload: string;
  readonly port: number;
  readonly l4: L4Attributes;
  readonly plaintext: boolean;
  mode: AuthorizedMode;
  /** the destination workload's policy now: replaced with each security index applied */
  policy: WorkloadPolicy;
  /** closes the connection because policy no longer admits it */
  readonly deny: () => void;
}

/** Why policy closed an open connection, with the policy that decided (for logs and the metric). */
interface Closure {
  reason: 'mtls_strict' | 'deny_policy' | 'no_allow_match';
  policy: string;
}

export class AuthorizedConnections {
  private readonly open = new Set<AuthorizedConnection>();

  get size(): number {
    return this.open.size;
  }

  add(c: AuthorizedConnection): AuthorizedConnection {
    this.open.add(c);
    return c;
  }

  delete(c: AuthorizedConnection): void {
    this.open.delete(c);
  }

  /** Authorizes every open connection against `security`; closes and counts those it denies. */
  reauthorize(security: SecurityIndex): number {
    const closedBy = new Map<string, number>();
    for (const c of this.open) {
      const policy = security.forWorkload(c.workload);
      const closure = judge(c, policy);
      if (!closure) {
        c.policy = policy;
        continue;
      }
      this.open.delete(c);
      connectionsClosedByPolicy.inc({ reason: closure.reason, policy: closure.policy });
      const key = `${closure.reason} ${closure.policy}`;
      closedBy.set(key, (closedBy.get(key) ?? 0) + 1);
      log.debug(
        { workload: c.workload, port: c.port, source: c.l4.sourcePrincipal ?? c.l4.sourceIp, reason: closure.reason, policy: closure.policy },
        'open connection closed: no longer allowed after a policy update',
      );
      c.deny();
    }
    let closed = 0;
    for (const [key, n] of closedBy) {
      const [reason, policy] = key.split(' ');
      log.info({ reason, policy, connections: n }, 'open inbound connections closed: no longer allowed after a policy update');
      closed += n;
    }
    return closed;
  }
}

function judge(c: AuthorizedConnection, policy: WorkloadPolicy): Closure | undefined {
  // "STRICT: Connection is an mTLS tunnel (TLS with client cert must be presented)."
  if (c.plaintext && !acceptsPlaintext(policy, c.port)) return { reason: 'mtls_strict', policy: policy.peerAuthentications.at(-1) ?? '-' };
  let r: ConnectionResult;
  if (c.mode === 'tcp') r = authorizeConnection(policy, c.l4, { protocol: 'tcp' });
  else {
    r = authorizeConnection(policy, c.l4);
    // its bytes are not read: what needs a request's attributes is judged as TCP
    if (r.needsL7 && c.mode === 'pipe') r = authorizeConnection(policy, c.l4, { protocol: 'tcp' });
  }
  if (r.decision === 'allow') return undefined;
  return { reason: r.reason === 'deny-policy' ? 'deny_policy' : 'no_allow_match', policy: r.policy ?? '-' };
}

/**
 * Resets the peer's side of an inbound connection: a TCP socket with RST, an HBONE CONNECT
 * stream with RST_STREAM CONNECT_ERROR ("the TCP connection … was reset", RFC 9113 §8.5),
 * anything else (the same-node pair) destroyed.
 */
export function resetDownstream(stream: Duplex): void {
  const s = stream as Duplex & { resetAndDestroy?: () => void; rstCode?: number; close?: (code: number) => void };
  if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
  else if ('rstCode' in s && typeof s.close === 'function') s.close(http2.constants.NGHTTP2_CONNECT_ERROR);
  else s.destroy();
}

/** This process's delivered inbound connections (deliverInbound's default). */
export const authorizedInbound = new AuthorizedConnections();

/**
 * After a new snapshot is applied: the process's open inbound connections meet its policy.
 * `security` is asked only when connections are open (the index compiles on first use).
 */
export function reauthorizeInbound(security: () => SecurityIndex): number {
  return authorizedInbound.size === 0 ? 0 : authorizedInbound.reauthorize(security());
}
