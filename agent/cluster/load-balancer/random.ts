// RANDOM: Istio "The random load balancer selects a random healthy host."
import { registerBalancer, type Balancer, type LbHost, type PickContext } from './load-balancer.js';

export class RandomBalancer implements Balancer {
  pick<H extends LbHost>(hosts: readonly H[], ctx: PickContext): H | undefined {
    const n = hosts.length;
    if (n === 0) return undefined;
    return hosts[Math.floor(ctx.random() * n)];
  }
}

registerBalancer('RANDOM', () => new RandomBalancer());
