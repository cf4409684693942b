// Localities as Istio writes them, shared by the control plane (which assigns them and
// validates localityLbSetting) and the agent (which balances by them): "region/zone/subzone",
// from the node labels below; a pattern in a DestinationRule is "region[/zone[/subzone]]",
// where a missing part or a final "*" matches anything.

export const REGION_LABEL = 'topology.kubernetes.io/region';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const SUBZONE_LABEL = 'topology.istio.io/subzone';
/** A pod's own locality, "region.zone.subzone" (label values cannot hold "/") */
export const LOCALITY_POD_LABEL = 'istio-locality';
/** The labels failoverPriority ranks by that a locality answers (in this order). */
export const TOPOLOGY_LABELS = [REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL] as const;

export interface Locality {
  region: string;
  zone: string;
  subzone: string;
}

export function parseLocality(s: string | undefined): Locality {
  const [region = '', zone = '', subzone = ''] = (s ?? '').split('/');
  return { region, zone, subzone };
}

/** Whether `locality` ("region/zone/subzone") is one that `pattern` names (Istio's LocalityMatch). */
export function localityMatches(pattern: string, locality: string | undefined): boolean {
  if (pattern === '*') return true;
  const want = pattern.split('/');
  const have = (locality ?? '').split('/');
  for (let k = 0; k < want.length; k++) {
    if (want[k] === '*') return true;
    if (want[k] !== (have[k] ?? '')) return false;
  }
  return true;
}
