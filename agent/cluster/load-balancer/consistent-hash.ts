// consistentHash (Istio: httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName) as
// a ring hash, Envoy's default for it: "each host is hashed onto a ring ... each request is
// routed to a host by hashing some property of the request, and finding the nearest
// corresponding host clockwise around the ring." Every host gets the same fixed number of
// points (160, as ketama; Envoy instead scales points to a minimum ring size), so the ring of
// N−1 hosts is the ring of N with one host's points taken out: only that host's keys move.
// A request without the hash input (no such header, cookie or parameter) gets a random host,
// as Envoy does when the hash policy yields no hash.
import { registerBalancer, type Balancer, type LbHost, type PickContext } from './load-balancer.js';

export const POINTS_PER_HOST = 160;

/** FNV-1a over UTF-16 code units, finished with murmur3's fmix32 for avalanche. 32-bit unsigned. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

interface Ring<H> {
  hashes: Uint32Array;
  owners: H[];
}

export class ConsistentHashBalancer implements Balancer {
  /** the ring of the last host list seen (the cluster hands the same array until health changes) */
  private ringFor: readonly LbHost[] | undefined;
  private ring: Ring<LbHost> | undefined;

  pick<H extends LbHost>(hosts: readonly H[], ctx: PickContext): H | undefined {
    const n = hosts.length;
    if (n === 0) return undefined;
    if (ctx.hash === undefined) return hosts[Math.floor(ctx.random() * n)];
    if (n === 1) return hosts[0];
    if (this.ringFor !== hosts) {
      this.ring = buildRing(hosts);
      this.ringFor = hosts;
    }
    const ring = this.ring!;
    return ring.owners[lowerBound(ring.hashes, ctx.hash >>> 0) % ring.hashes.length] as H;
  }
}

registerBalancer('CONSISTENT_HASH', () => new ConsistentHashBalancer());

export function buildRing<H extends LbHost>(hosts: readonly H[]): Ring<H> {
  const perHost = POINTS_PER_HOST;
  const points: { hash: number; owner: H }[] = [];
  for (const h of hosts) for (let i = 0; i < perHost; i++) points.push({ hash: hashString(`${h.key}_${i}`), owner: h });
  // ties broken by key so the ring does not depend on the order hosts were listed in
  points.sort((a, b) => a.hash - b.hash || (a.owner.key < b.owner.key ? -1 : a.owner.key > b.owner.key ? 1 : 0));
  return { hashes: Uint32Array.from(points, (p) => p.hash), owners: points.map((p) => p.owner) };
}

/** First index whose value is >= x (hashes.length when none: wraps to 0). */
function lowerBound(a: Uint32Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
