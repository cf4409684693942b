// What an east-west gateway in gateway mode (`nodemesh agent --gateway`, issue 13) takes from
// each snapshot: its network, the tunnels it may open, and its own identity.
//
// - Its network is its node's (`--node`), as Istio's gateway is in its cluster's network.
// - It may open tunnels only to the HBONE port (15008) of node proxies of that network, as
//   the snapshot lists them (Snapshot.nodes with an address): it is no open relay into the
//   network. A remote cluster's node of the same network counts, as it is reachable directly.
// - Its identity is the SPIFFE ID of the ServiceAccount its pod runs as, found as the CA
//   would authorize it (control/ca/node-auth.ts: a pod with that identity on the caller's node):
//   - with a node credential, the pod of an east-west gateway Service of its network
//     (Snapshot.gateways: a Service labelled topology.istio.io/network with port 15008, an
//     address and pods) that the snapshot places on `--node`; when several gateways have a
//     pod there, the one whose pod holds `--proxy-ip` (the gateway pod's own IP);
//   - with a ServiceAccount token, that token's ServiceAccount, whose pod on `--node` gives
//     the SPIFFE ID (so the trust domain is the snapshot's).
import type { Snapshot, Workload } from '../../control/api/snapshot.js';
import { HBONE_PORT } from './protocol.js';

export interface GatewayScopeInput {
  node: string;
  proxyIp: string;
  /** the token's ServiceAccount (`--token-file`); absent with a node credential */
  serviceAccount?: { namespace: string; name: string };
}

export interface GatewayScope {
  /** its node's network ("" for the one flat network) */
  network: string;
  /** `ip:port` of every node proxy it may tunnel to */
  targets: ReadonlySet<string>;
  /** its SPIFFE ID, or undefined (then `problem` says why) */
  identity: string | undefined;
  problem: string | undefined;
}

export function gatewayScope(s: Snapshot, input: GatewayScopeInput): GatewayScope {
  const network = s.nodes.find((n) => n.name === input.node)?.network ?? '';
  const targets = new Set(s.nodes.filter((n) => n.ip && (n.network ?? '') === network).map((n) => `${n.ip}:${HBONE_PORT}`));
  const { identity, problem } = input.serviceAccount ? tokenIdentity(s, input, input.serviceAccount) : gatewayServiceIdentity(s, input, network);
  return { network, targets, identity, problem };
}

function tokenIdentity(s: Snapshot, input: GatewayScopeInput, sa: { namespace: string; name: string }): Pick<GatewayScope, 'identity' | 'problem'> {
  const pods = s.workloads.filter((w) => w.node === input.node && w.namespace === sa.namespace && w.serviceAccount === sa.name);
  if (pods.length === 0) {
    return {
      identity: undefined,
      problem: `the snapshot (v${s.version}) has no pod of ServiceAccount ${sa.namespace}/${sa.name} (the token's) on node ${input.node}: is --node the gateway pod's node (NODE_NAME from spec.nodeName)?`,
    };
  }
  return { identity: pick(pods, input.proxyIp)[0]!.spiffeId, problem: undefined };
}

function gatewayServiceIdentity(s: Snapshot, input: GatewayScopeInput, network: string): Pick<GatewayScope, 'identity' | 'problem'> {
  const ids = new Set((s.gateways ?? []).filter((g) => g.network === network).map((g) => g.spiffeId));
  const pods = s.workloads.filter((w) => w.node === input.node && ids.has(w.spiffeId));
  const chosen = [...new Set(pick(pods, input.proxyIp).map((w) => w.spiffeId))];
  if (chosen.length === 1) return { identity: chosen[0], problem: undefined };
  if (chosen.length > 1) {
    return {
      identity: undefined,
      problem: `pods of several east-west gateways of network ${JSON.stringify(network)} run on node ${input.node} (${chosen.join(', ')}) and none holds --proxy-ip ${input.proxyIp}: start the gateway with its pod's IP as --proxy-ip`,
    };
  }
  return {
    identity: undefined,
    problem:
      `the snapshot (v${s.version}) places no pod of an east-west gateway of network ${JSON.stringify(network)} on node ${input.node}: ` +
      `a gateway is a Service labelled topology.istio.io/network=${network || '<network>'} with port 15008, an address (LoadBalancer ingress or externalIPs) and a pod on this node` +
      (network === '' ? ' (and the control plane needs --network)' : ''),
  };
}

/** The pods at `proxyIp` when there are any (the gateway's own pod), else all of them. */
function pick(pods: Workload[], proxyIp: string): Workload[] {
  const own = pods.filter((w) => w.ip === proxyIp);
  return own.length > 0 ? own : pods;
}

/**
 * The ServiceAccount a projected token is for, from its claims (`sub`:
 * `system:serviceaccount:<namespace>:<name>`). Read, not verified: the token is the gateway's
 * own, and the control plane verifies it (TokenReview) before the CA signs anything.
 */
export function tokenServiceAccount(token: string): { namespace: string; name: string } {
  const payload = token.trim().split('.')[1];
  let sub: unknown;
  try {
    sub = (JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as { sub?: unknown }).sub;
  } catch {
    sub = undefined;
  }
  const m = typeof sub === 'string' ? /^system:serviceaccount:([^:]+):([^:]+)$/.exec(sub) : null;
  if (!m) throw new Error(`the token is not a ServiceAccount token (a JWT whose sub is system:serviceaccount:<namespace>:<name>)${typeof sub === 'string' ? `: its sub is ${JSON.stringify(sub)}` : ''}`);
  return { namespace: m[1]!, name: m[2]! };
}
