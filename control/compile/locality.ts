// Where a pod runs, as Istio reads it: a locality "region/zone/subzone" from its node's labels
// topology.kubernetes.io/region, topology.kubernetes.io/zone and topology.istio.io/subzone,
// unless the pod says otherwise with its label istio-locality ("region.zone.subzone": label
// values cannot hold "/"). Locality load balancing (agent/cluster/locality.ts) groups the
// endpoints of a destination by it (labels and matching: control/api/locality.ts).
//
// A locality is only written into the snapshot when one is known, so a cluster without
// topology labels (the lab by default) gets the same snapshot as before localities existed.
import { LOCALITY_POD_LABEL, REGION_LABEL, SUBZONE_LABEL, ZONE_LABEL } from '../api/locality.js';
import type { Endpoint, NodeInfo } from '../api/snapshot.js';

/** "region/zone/subzone" from a Node's labels, "" when it has none of them. */
export function nodeLocality(labels: Record<string, string>): string {
  const region = labels[REGION_LABEL] ?? '';
  const zone = labels[ZONE_LABEL] ?? '';
  const subzone = labels[SUBZONE_LABEL] ?? '';
  return region || zone || subzone ? `${region}/${zone}/${subzone}` : '';
}

/** A pod's own istio-locality label as "region/zone/subzone", or undefined. */
export function podLocality(labels: Record<string, string>): string | undefined {
  const v = labels[LOCALITY_POD_LABEL];
  if (!v) return undefined;
  const [region = '', zone = '', subzone = ''] = v.split('.');
  return `${region}/${zone}/${subzone}`;
}

/**
 * Sets the locality of every node and endpoint that has one (in place: the compiler's own
 * freshly built objects). `podLabels` by "namespace/name".
 */
export function assignLocalities(
  nodes: NodeInfo[],
  endpoints: Iterable<Endpoint>,
  nodeLabels: ReadonlyMap<string, Record<string, string>>,
  podLabels: ReadonlyMap<string, Record<string, string>>,
): void {
  const ofNode = new Map<string, string>();
  for (const [name, labels] of nodeLabels) {
    const l = nodeLocality(labels);
    if (l) ofNode.set(name, l);
  }
  for (const n of nodes) {
    const l = ofNode.get(n.name);
    if (l) n.locality = l;
  }
  for (const e of endpoints) {
    const labels = podLabels.get(e.workload);
    const l = (labels && podLocality(labels)) ?? ofNode.get(e.node);
    if (l) e.locality = l;
  }
}
