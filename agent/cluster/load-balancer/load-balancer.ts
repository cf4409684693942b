// Endpoint choice within one destination cluster (a Service port, or a DestinationRule subset
// of it). The balancers see only the hosts that may be used now (healthy ones, or all of them
// in panic mode) and the request's hash when the policy is consistentHash. Istio's simple
// policies ROUND_ROBIN, LEAST_REQUEST (Istio's default when unset), RANDOM and consistentHash,
// plus PEAK_EWMA (Linkerd's latency-aware power of two choices).
import type { LoadBalancer as LoadBalancerPolicy } from '../../../control/api/snapshot-routing.js';
import { ConsistentHashBalancer } from './consistent-hash.js';
import { LeastRequestBalancer } from './least-request.js';
import { PeakEwmaBalancer } from './peak-ewma.js';
import { RandomBalancer } from './random.js';
import { RoundRobinBalancer } from './round-robin.js';

/** What a balancer reads (and, for peak EWMA, writes) on a host. */
export interface LbHost {
  /** `ip:port`, stable across snapshots: the consistent-hash ring is built from it */
  readonly key: string;
  /** requests in flight to this host (maintained by the cluster) */
  active: number;
  /** peak-EWMA round-trip estimate in ms and when it was last updated (ms clock) */
  rttEstimate: number;
  rttUpdatedAt: number;
}

export interface PickContext {
  /** 32-bit hash of the request for consistentHash; undefined = no hash input, pick at random */
  hash: number | undefined;
  random: () => number;
  /** monotonic ms */
  now: number;
}

export interface Balancer {
  pick<H extends LbHost>(hosts: readonly H[], ctx: PickContext): H | undefined;
}

export function newBalancer(policy: LoadBalancerPolicy | undefined): Balancer {
  if (policy?.consistentHash) return new ConsistentHashBalancer();
  switch (policy?.simple) {
    case 'ROUND_ROBIN':
      return new RoundRobinBalancer();
    case 'RANDOM':
      return new RandomBalancer();
    case 'PEAK_EWMA':
      return new PeakEwmaBalancer();
    // PASSTHROUGH needs the original destination, which a Service VIP never is: balance as
    // Istio's default does. LEAST_REQUEST and unset: power of two choices.
    default:
      return new LeastRequestBalancer();
  }
}

/** Two distinct random indexes in [0, n) (n >= 2). */
export function twoChoices(n: number, random: () => number): [number, number] {
  const a = Math.floor(random() * n);
  let b = Math.floor(random() * (n - 1));
  if (b >= a) b++;
  return [a, b];
}
