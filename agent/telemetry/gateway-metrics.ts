// The east-west gateway's own Prometheus metrics (gateway mode, `nodemesh agent --gateway`),
// defined in one place; registered only by a gateway, so a node agent's scrape has none.
// Prefixed nodemesh_gateway_: Istio's east-west gateway is an Envoy whose counters are
// Envoy's own; these say what an operator asks of a nodemesh gateway (is it carrying
// tunnels, and what does it refuse, and why).
import { Counter, Gauge, type Registry } from '../../common/prometheus.js';

/** GatewayObserver of agent/hbone/gateway.ts, written out here so telemetry imports nothing above it. */
export interface GatewayMetrics {
  tunnelOpened(): void;
  tunnelClosed(): void;
  refused(reason: string): void;
  /** the node proxies it may tunnel to now, and whether it knows its own identity (1) */
  scope(targets: number, identityKnown: boolean): void;
}

export const GATEWAY_REFUSAL_REASONS = ['handshake', 'peer_identity', 'method', 'authority', 'target', 'upstream'] as const;

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  const tunnels = new Counter({
    name: 'nodemesh_gateway_tunnels_total',
    help: 'Tunnels the east-west gateway opened (a CONNECT from a peer of another network to a node proxy of its own)',
    registers: [registry],
  });
  const open = new Gauge({
    name: 'nodemesh_gateway_tunnels_open',
    help: 'Tunnels open through the east-west gateway now',
    registers: [registry],
  });
  const refused = new Counter({
    name: 'nodemesh_gateway_refused_total',
    help: 'Peers and streams the east-west gateway refused, by reason: handshake (no certificate of the trust bundle), peer_identity (not a workload SVID), method, authority, target (not the HBONE port of a node proxy of its network: 400), upstream (node proxy unreachable: 503)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const targets = new Gauge({
    name: 'nodemesh_gateway_allowed_targets',
    help: 'Node proxies of its network the east-west gateway may tunnel to (from the last snapshot)',
    registers: [registry],
  });
  const identity = new Gauge({
    name: 'nodemesh_gateway_identity_known',
    help: 'Whether the east-west gateway knows its own identity from the snapshot (1) or not (0: it refuses every handshake)',
    registers: [registry],
  });
  // every reason is shown from the start, so a rate() over a refusal has a series before the first one
  for (const reason of GATEWAY_REFUSAL_REASONS) refused.inc({ reason }, 0);
  tunnels.inc(0);
  return {
    tunnelOpened() {
      tunnels.inc();
      open.inc();
    },
    tunnelClosed() {
      open.dec();
    },
    refused(reason) {
      refused.inc({ reason });
    },
    scope(n, known) {
      targets.set(n);
      identity.set(known ? 1 : 0);
    },
  };
}
