// ROUND_ROBIN: Istio "Round Robin policy. Default" in older releases; each host in turn. The
// cursor lives in the balancer, which the cluster keeps across snapshots.
import { registerBalancer, type Balancer, type LbHost, type PickContext } from './load-balancer.js';

export class RoundRobinBalancer implements Balancer {
  private next = 0;

  pick<H extends LbHost>(hosts: readonly H[], _ctx: PickContext): H | undefined {
    const n = hosts.length;
    if (n === 0) return undefined;
    if (this.next >= n) this.next = 0;
    return hosts[this.next++];
  }
}

registerBalancer('ROUND_ROBIN', () => new RoundRobinBalancer());
