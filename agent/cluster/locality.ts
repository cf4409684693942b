// Locality load balancing, as Istio configures Envoy for it (DestinationRule
// `loadBalancer.localityLbSetting`; the mesh default is on). The endpoints of a destination
// are split into groups by their locality ("region/zone/subzone", control/api/locality.ts)
// relative to the node proxy's own locality — every source of a node proxy is a pod on its
// node, so the node's locality is the source's, as a sidecar's would be:
//
// - failover (the default, and `failover` / `failoverPriority`): priorities. Envoy's order
//   that Istio sets: 0 same region, zone and subzone; 1 same zone; 2 same region; 3 the
//   region a `failover` rule names for ours; 4 the rest. With `failoverPriority`, the number
//   of its labels, in order, on which the endpoint matches the source ranks it instead.
//   Only with outlier detection on (as Istio: without it no locality is ever seen to fail,
//   and a failover would never happen), and only where the node's locality is known.
// - distribute: the first rule whose `from` matches our locality gives weights to patterns of
//   localities; a pattern's weight is shared equally by the localities it takes (the first
//   pattern, in sorted order, that matches a locality takes it); localities no pattern
//   matches get no traffic.
//
// How load moves between groups is Envoy's, with its overprovisioning factor 1.4: a group's
// availability is min(1, 1.4 × healthy / total). Priorities take load in order, each as much
// as its availability allows, normalised when the availabilities sum to less than 100 %;
// weighted localities are picked with probability weight × availability. So traffic stays in
// the nearest group until more than ~29 % of its endpoints are ejected, then spills over in
// proportion. When no endpoint of any group is healthy the cluster's panic mode applies.
import { TOPOLOGY_LABELS, localityMatches, parseLocality, type Locality } from '../../control/api/locality.js';
import type { LocalityLb } from '../../control/api/snapshot-routing.js';

/** Envoy's default overprovisioning factor (1.4, as a percentage of a group's healthy share). */
export const OVERPROVISIONING = 1.4;

export interface LocalityHost {
  endpoint: { locality?: string };
}

/** One group of endpoints: a priority (failover) or a locality with a weight (distribute). */
export interface LocalityGroup<H> {
  hosts: H[];
  /** distribute: the locality's share of the weights (0 = no traffic); failover: unused (1) */
  weight: number;
}

export interface LocalityPlan<H> {
  mode: 'failover' | 'distribute';
  /** failover: in priority order, the nearest first */
  groups: LocalityGroup<H>[];
}

/**
 * The groups `hosts` fall into for a proxy at `own`, or undefined when locality load
 * balancing does not apply (off, our locality unknown, failover without outlier detection,
 * or every endpoint in one group: balancing over all of them is the same).
 */
export function localityPlan<H extends LocalityHost>(
  hosts: readonly H[],
  setting: LocalityLb | undefined,
  own: string | undefined,
  outlierDetection: boolean,
): LocalityPlan<H> | undefined {
  if (setting && !setting.enabled) return undefined;
  if (!own || hosts.length < 2) return undefined;
  const rule = setting?.distribute.find((d) => localityMatches(d.from, own));
  if (rule) return distribute(hosts, rule.to);
  if (!outlierDetection) return undefined;
  const me = parseLocality(own);
  const rank = setting && setting.failoverPriority.length > 0
    ? (l: Locality) => priorityByLabels(setting.failoverPriority, me, l)
    : (l: Locality) => priorityByLocality(me, l, setting?.failover.find((f) => f.from === me.region)?.to);
  const byPriority = new Map<number, H[]>();
  for (const h of hosts) {
    const p = rank(parseLocality(h.endpoint.locality));
    const list = byPriority.get(p);
    if (list) list.push(h);
    else byPriority.set(p, [h]);
  }
  if (byPriority.size < 2) return undefined;
  const groups = [...byPriority].sort((a, b) => a[0] - b[0]).map(([, hs]) => ({ hosts: hs, weight: 1 }));
  return { mode: 'failover', groups };
}

/** Istio's priorities for locality failover (see the head of this file). */
function priorityByLocality(me: Locality, l: Locality, failoverRegion: string | undefined): number {
  if (l.region === me.region) {
    if (l.zone !== me.zone) return 2;
    return l.subzone === me.subzone ? 0 : 1;
  }
  return failoverRegion !== undefined && l.region === failoverRegion ? 3 : 4;
}

/**
 * failoverPriority: the more of the labels, in order, match the source's, the nearer. Only
 * the topology labels are known for both sides here (the validator says so for others).
 */
function priorityByLabels(labels: readonly string[], me: Locality, l: Locality): number {
  let matched = 0;
  for (const label of labels) {
    const i = (TOPOLOGY_LABELS as readonly string[]).indexOf(label);
    if (i < 0) break;
    const part = i === 0 ? 'region' : i === 1 ? 'zone' : 'subzone';
    if (me[part] === '' || me[part] !== l[part]) break;
    matched++;
  }
  return labels.length - matched;
}

function distribute<H extends LocalityHost>(hosts: readonly H[], to: Record<string, number>): LocalityPlan<H> {
  const byLocality = new Map<string, H[]>();
  for (const h of hosts) {
    const l = h.endpoint.locality ?? '';
    const list = byLocality.get(l);
    if (list) list.push(h);
    else byLocality.set(l, [h]);
  }
  const patterns = Object.keys(to).sort();
  const taker = new Map<string, string>();
  for (const l of byLocality.keys()) {
    const p = patterns.find((pat) => localityMatches(pat, l));
    if (p !== undefined) taker.set(l, p);
  }
  const shares = new Map<string, number>();
  for (const p of taker.values()) shares.set(p, (shares.get(p) ?? 0) + 1);
  const groups = [...byLocality].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([l, hs]) => {
    const p = taker.get(l);
    return { hosts: hs, weight: p === undefined ? 0 : to[p]! / shares.get(p)! };
  });
  return { mode: 'distribute', groups };
}

/** min(1, 1.4 × healthy / total): how much of its share a group can take. */
export function availability(healthy: number, total: number): number {
  return total === 0 ? 0 : Math.min(1, (OVERPROVISIONING * healthy) / total);
}

/**
 * Each group's share of the requests (fractions summing to 1), from how many of its hosts
 * are healthy; all 0 when none is (the caller's panic mode).
 */
export function groupLoads(mode: LocalityPlan<unknown>['mode'], groups: readonly { total: number; healthy: number; weight: number }[]): number[] {
  const avail = groups.map((g) => availability(g.healthy, g.total) * (mode === 'distribute' ? g.weight : 1));
  const sum = avail.reduce((a, b) => a + b, 0);
  if (sum === 0) return avail.map(() => 0);
  if (mode === 'distribute') return avail.map((a) => a / sum);
  // priorities: each takes what it can of what is left; when all of them together cannot
  // take everything, Envoy normalises their availabilities to the whole
  if (sum < 1) return avail.map((a) => a / sum);
  let left = 1;
  return avail.map((a) => {
    const take = Math.min(left, a);
    left -= take;
    return take;
  });
}
