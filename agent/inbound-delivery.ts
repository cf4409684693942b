// Delivery of an inbound connection to a pod on this node, after the proxy accepted it
// (from an HBONE tunnel on 15008, or captured plaintext on 15006). This is where
// inbound policy applies: PeerAuthentication (is plaintext allowed?) and
// AuthorizationPolicy (L4 at accept; L7 only for workloads with HTTP rules).
// Thin for now: connect to the pod and pipe.
import type { Duplex } from 'node:stream';
import type { Workload } from '../control/api/snapshot.js';
import type { UpstreamConnector } from './upstream.js';

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

export type InboundResult = { delivered: true } | { delivered: false; flag: string; reason: string };

/**
 * Connects `stream` to the pod. Resolves once the pod connection is up (or refused);
 * on refusal the caller answers its peer (HBONE: a non-200 status; plaintext: a reset).
 */
export async function deliverInbound(stream: Duplex, c: InboundConnection, connector: UpstreamConnector): Promise<InboundResult> {
  let pod: Duplex;
  try {
    pod = await connector.connect({
      source: undefined,
      sourceAddress: c.sourceIp,
      sourcePort: c.sourcePort,
      ip: c.destination.ip,
      port: c.port,
      destination: c.destination,
    });
  } catch (err) {
    return { delivered: false, flag: 'UF', reason: (err as Error).message };
  }
  stream.on('error', () => pod.destroy());
  pod.on('error', () => stream.destroy());
  stream.pipe(pod);
  pod.pipe(stream);
  return { delivered: true };
}
