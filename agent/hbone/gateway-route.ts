// Which way a node proxy reaches a destination's node proxy (issue 13): directly when both
// are in the same network (or there is one flat network), else through an east-west gateway
// of the destination's network, from the snapshot (Snapshot.gateways), as Istio ambient's
// ztunnel does for a workload whose network is not its own ("double HBONE", client.ts).
//
// The destination's network is its own (Workload.network), else its node's; the source's is
// this node's (every source of a node proxy is a pod on its node). With several gateways
// into one network, the destination's node picks one (a hash), so the connections to one
// node share a gateway connection and the nodes of a network spread over its gateways.
import { createHash } from 'node:crypto';
import type { Workload } from '../../control/api/snapshot.js';
import type { ProxyState } from '../state/proxy-state.js';
import { UpstreamError } from '../transport/connector.js';
import { ResponseFlag } from '../transport/response-flags.js';
import type { GatewayRoute } from './client.js';

/**
 * The gateway to reach `dst` through, or undefined to dial its node proxy directly. Throws an
 * UpstreamError (UF) when its network is another one and no gateway into it is known.
 */
export function gatewayRoute(state: ProxyState, localNode: string, dst: Workload): GatewayRoute | undefined {
  const here = state.nodeNetwork(localNode);
  const there = dst.network ?? state.nodeNetwork(dst.node);
  if (there === here) return undefined;
  const gateways = state.gateways(there);
  if (gateways.length === 0) {
    throw new UpstreamError(
      ResponseFlag.UpstreamConnectionFailure,
      `${dst.uid} is in network ${JSON.stringify(there)}${dst.cluster ? ` (cluster ${dst.cluster})` : ''}, not this node's (${JSON.stringify(here)}), and the snapshot knows no east-west gateway into it: does its cluster have a Service labelled topology.istio.io/network=${there} with port 15008 and a LoadBalancer address?`,
    );
  }
  const g = gateways.length === 1 ? gateways[0]! : gateways[createHash('sha256').update(dst.node).digest().readUInt32BE(0) % gateways.length]!;
  return { address: g.address, port: g.port, identity: g.spiffeId };
}
