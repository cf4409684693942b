// LEAST_REQUEST, Istio's default: Envoy "an O(1) algorithm which selects N random available
// hosts as specified in the configuration (2 by default) and picks the host which has the
// fewest active requests" (power of two choices; with equal weights).
import { twoChoices, type Balancer, type LbHost, type PickContext } from './load-balancer.js';

export class LeastRequestBalancer implements Balancer {
  pick<H extends LbHost>(hosts: readonly H[], ctx: PickContext): H | undefined {
    const n = hosts.length;
    if (n === 0) return undefined;
    if (n === 1) return hosts[0];
    const [i, j] = twoChoices(n, ctx.random);
    const a = hosts[i]!;
    const b = hosts[j]!;
    return b.active < a.active ? b : a;
  }
}
