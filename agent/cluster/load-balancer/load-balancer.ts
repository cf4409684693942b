// Endpoint choice within one destination cluster (a Service port, or a DestinationRule subset
// of it). The balancers see only the hosts that may be used now (healthy ones, or all of them
// in panic mode) and the request's hash when the policy is consistentHash. Istio's simple
// policies ROUND_ROBIN, LEAST_REQUEST (Istio's default when unset), RANDOM and consistentHash,
// plus PEAK_EWMA (Linkerd's latency-aware power of two choices).
//
// This is the registry, as grpc-js's registerLoadBalancerType: each strategy registers itself
// under its policy name when its module loads, and this file imports none of them
// (strategies.ts loads them all).
import type { LoadBalancer as LoadBalancerPolicy } from '../../../control/api/snapshot-routing.js';

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

/** A policy's balancer name: the simple policy, or CONSISTENT_HASH when the policy hashes. */
export type BalancerName = LoadBalancerPolicy['simple'] | 'CONSISTENT_HASH';

const factories = new Map<BalancerName, () => Balancer>();

/** Makes `name` available to clusters; a strategy calls it once, when its module loads. */
export function registerBalancer(name: BalancerName, factory: () => Balancer): void {
  factories.set(name, factory);
}

export function balancerName(policy: LoadBalancerPolicy | undefined): BalancerName {
  return policy?.consistentHash ? 'CONSISTENT_HASH' : (policy?.simple ?? 'LEAST_REQUEST');
}

/**
 * A new balancer for a policy. PASSTHROUGH needs the original destination, which a Service
 * VIP never is: it balances as Istio's default does, LEAST_REQUEST (power of two choices).
 */
export function newBalancer(policy: LoadBalancerPolicy | undefined): Balancer {
  const factory = factories.get(balancerName(policy)) ?? factories.get('LEAST_REQUEST');
  if (!factory) throw new Error('no load balancer registered: import cluster/load-balancer/strategies.js');
  return factory();
}

/**
 * Power of two choices: two distinct random hosts, and `b` wins when `cheaper(b, a, now)`
 * (`a` on a tie). `cheaper` is a module-level function: a pick allocates nothing.
 */
export function pickTwo<H extends LbHost>(hosts: readonly H[], ctx: PickContext, cheaper: (b: H, a: H, now: number) => boolean): H | undefined {
  const n = hosts.length;
  if (n === 0) return undefined;
  if (n === 1) return hosts[0];
  const [i, j] = twoChoices(n, ctx.random);
  const a = hosts[i]!;
  const b = hosts[j]!;
  return cheaper(b, a, ctx.now) ? b : a;
}

/** Two distinct random indexes in [0, n) (n >= 2). */
export function twoChoices(n: number, random: () => number): [number, number] {
  const a = Math.floor(random() * n);
  let b = Math.floor(random() * (n - 1));
  if (b >= a) b++;
  return [a, b];
}
