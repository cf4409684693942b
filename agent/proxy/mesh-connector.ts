// The node proxy's upstream connector: picks the transport per destination.
//
// - a meshed workload on another node → HBONE (mutual TLS with the source's identity,
//   HTTP/2 CONNECT to that node's proxy on 15008);
// - a meshed workload on this node → the same-node path: no TLS (the bytes never leave
//   this process, which holds both identities), but the connection still goes through
//   the inbound side — deliverInbound with the source principal known, so inbound policy
//   and destination telemetry apply exactly as for a tunnel from another node. Reported as
//   mutual_tls, as ztunnel's node-local fast path does: the proxy vouches for both ends.
// - anything else (a pod that is not meshed, an address outside the mesh) → plain TCP; the
//   source principal is simply not proven there.
// A meshed destination is reached with HBONE only when the source is a known workload:
// without one there is no identity to present, and the connection goes as plain TCP, which
// the destination's inbound capture then treats as plaintext (PeerAuthentication decides).
import type { Duplex } from 'node:stream';
import { logger } from '../../common/log.js';
import type { Workload } from '../../control/api/snapshot.js';
import { duplexPair } from '../transport/duplex-pair.js';
import type { InboundDeliver } from './inbound-capture.js';
import type { ResponseFlagValue } from '../transport/response-flags.js';
import { UpstreamError, type UpstreamConnector, type UpstreamRequest, type UpstreamSecurity } from '../transport/connector.js';

const log = logger('agent/mesh-connector');

export interface MeshConnectorOptions {
  /** this node's name */
  node: string;
  /** HBONE tunnels to other nodes' proxies (hbone/client.ts) */
  hbone: UpstreamConnector;
  /** plain TCP (marked) for destinations outside the mesh */
  tcp: UpstreamConnector;
  /** the inbound side of this node (deliverInbound, policy bound), for the same-node path */
  local: InboundDeliver;
}

export type MeshPath = 'hbone' | 'local' | 'tcp';

export class MeshConnector implements UpstreamConnector {
  constructor(private readonly opts: MeshConnectorOptions) {}

  path(req: UpstreamRequest): MeshPath {
    const dst = req.destination;
    if (!dst?.meshed || !req.source) return 'tcp';
    return dst.node === this.opts.node ? 'local' : 'hbone';
  }

  security(req: UpstreamRequest): UpstreamSecurity | undefined {
    if (this.path(req) === 'tcp') return undefined;
    return { policy: 'mutual_tls', sourcePrincipal: req.source!.spiffeId, destinationPrincipal: req.destination!.spiffeId };
  }

  connect(req: UpstreamRequest): Promise<Duplex> {
    switch (this.path(req)) {
      case 'hbone':
        return this.opts.hbone.connect(req);
      case 'local':
        return this.local(req, req.source!, req.destination!);
      case 'tcp':
        return this.opts.tcp.connect(req);
    }
  }

  private async local(req: UpstreamRequest, source: Workload, destination: Workload): Promise<Duplex> {
    const [caller, inbound] = duplexPair();
    const result = await this.opts.local(inbound, {
      destination,
      port: req.port,
      sourceIp: req.sourceAddress,
      sourcePort: req.sourcePort,
      sourcePrincipal: source.spiffeId,
      security: 'mutual_tls',
    });
    if (result.delivered) return caller;
    for (const end of [inbound, caller]) {
      end.on('error', () => {});
      end.destroy();
    }
    log.debug({ destination: destination.uid, reason: result.reason }, 'same-node delivery refused');
    throw new UpstreamError(
      result.flag as ResponseFlagValue,
      `to ${destination.uid} (${req.ip}:${req.port}) on this node: ${result.reason}`,
    );
  }
}
