// Weighted choice among a route's destinations (Istio route weights, Gateway API backendRef
// weights, weighted TCP routes). Istio: "The proportion of traffic to be forwarded to the
// service version. If there is only one destination in a rule, all traffic will be routed to
// it irrespective of the weight." Gateway API: "Weight specifies the proportion of requests
// forwarded to the referenced backend. This is computed as weight/(sum of all weights in this
// BackendRefs list)... If only one backend is specified and it has a weight greater than 0,
// 100% of the traffic is forwarded to that backend. If weight is set to 0, no traffic should
// be forwarded for this entry."
//
// Built once per route per snapshot; a pick is one random number and a short scan.

export type Random = () => number;

export class WeightedPicker<T> {
  private readonly items: T[];
  /** cumulative weights of the items with weight > 0 */
  private readonly cumulative: number[];
  readonly total: number;

  /**
   * `single`: when there is exactly one item it takes all traffic whatever its weight
   * (Istio); Gateway API passes false so that a lone backend of weight 0 gets nothing.
   */
  constructor(entries: readonly { item: T; weight: number }[], single = true) {
    this.items = [];
    this.cumulative = [];
    let sum = 0;
    if (single && entries.length === 1) {
      this.items.push(entries[0]!.item);
      this.cumulative.push(1);
      sum = 1;
    } else {
      for (const e of entries) {
        const w = Number.isFinite(e.weight) && e.weight > 0 ? e.weight : 0;
        if (w === 0) continue; // a zero weight is never picked
        sum += w;
        this.items.push(e.item);
        this.cumulative.push(sum);
      }
    }
    this.total = sum;
  }

  get size(): number {
    return this.items.length;
  }

  /** undefined when every weight is zero (or there is nothing to pick) */
  pick(random: Random = Math.random): T | undefined {
    const n = this.items.length;
    if (n === 0) return undefined;
    if (n === 1) return this.items[0];
    const r = random() * this.total;
    const c = this.cumulative;
    // few destinations in practice: a linear scan beats a binary search
    for (let i = 0; i < n - 1; i++) if (r < c[i]!) return this.items[i];
    return this.items[n - 1];
  }
}
