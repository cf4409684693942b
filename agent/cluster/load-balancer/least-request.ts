// LEAST_REQUEST, Istio's default: Envoy "an O(1) algorithm which selects N random available
// hosts as specified in the configuration (2 by default) and picks the host which has the
// fewest active requests" (power of two choices; with equal weights).
import { pickTwo, registerBalancer, type Balancer, type LbHost, type PickContext } from './load-balancer.js';

function fewerActive(b: LbHost, a: LbHost): boolean {
  return b.active < a.active;
}

export class LeastRequestBalancer implements Balancer {
  pick<H extends LbHost>(hosts: readonly H[], ctx: PickContext): H | undefined {
    return pickTwo(hosts, ctx, fewerActive);
  }
}

registerBalancer('LEAST_REQUEST', () => new LeastRequestBalancer());
