// PEAK_EWMA: Linkerd's latency-aware balancer (Finagle's Peak EWMA, as tower implements it),
// selectable beyond Istio's policies. Each host's cost is its round-trip estimate times its
// pending requests plus one; two random hosts are compared and the cheaper one wins.
// Tower: "Work is calculated by multiplying the exponentially-weighted moving average (EWMA)
// of response latencies by the number of pending requests. The Peak-EWMA algorithm is
// designed to be especially sensitive to worst-case latencies. Over time, the peak latency
// value decays towards the moving average of latencies to the endpoint."
import { pickTwo, registerBalancer, type Balancer, type LbHost, type PickContext } from './load-balancer.js';

/** Linkerd's defaults: a new host is assumed to answer in 30 ms; estimates decay over 10 s. */
export const EWMA_DEFAULT_RTT_MS = 30;
export const EWMA_DECAY_MS = 10_000;

/**
 * Folds one observed round trip into the host's estimate: a slower observation replaces the
 * estimate at once (the peak); a faster one pulls it down by how long ago the last update
 * was. An `rtt` of 0 just decays the estimate (what a read does).
 */
export function observeRtt(h: LbHost, rtt: number, now: number, decayMs = EWMA_DECAY_MS): number {
  if (h.rttEstimate < rtt) {
    h.rttEstimate = rtt;
  } else {
    const elapsed = Math.max(0, now - h.rttUpdatedAt);
    const decay = Math.exp(-elapsed / decayMs);
    h.rttEstimate = h.rttEstimate * decay + rtt * (1 - decay);
  }
  h.rttUpdatedAt = now;
  return h.rttEstimate;
}

export function peakEwmaCost(h: LbHost, now: number): number {
  return observeRtt(h, 0, now) * (h.active + 1);
}

function cheaperNow(b: LbHost, a: LbHost, now: number): boolean {
  return peakEwmaCost(b, now) < peakEwmaCost(a, now);
}

export class PeakEwmaBalancer implements Balancer {
  pick<H extends LbHost>(hosts: readonly H[], ctx: PickContext): H | undefined {
    return pickTwo(hosts, ctx, cheaperNow);
  }
}

registerBalancer('PEAK_EWMA', () => new PeakEwmaBalancer());
