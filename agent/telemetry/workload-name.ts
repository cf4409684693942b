// The workload name Istio reports (source_workload, destination_workload): the pod's owner,
// not the pod. The control plane derives it from ownerReferences into the snapshot
// (Workload.workloadName, control/api/workload-name.ts); a snapshot from an older control
// plane carries none, and the pod's labels say it instead.
import type { Workload } from '../../control/api/snapshot.js';
import { workloadNameFromLabels } from '../../control/api/workload-name.js';

const cache = new WeakMap<Workload, string>();

/** The workload name the snapshot says, else the one the pod's labels say. */
export function workloadName(w: Pick<Workload, 'name' | 'labels'> & { workloadName?: string }): string {
  if (w.workloadName) return w.workloadName;
  const known = cache.get(w as Workload);
  if (known !== undefined) return known;
  const name = workloadNameFromLabels(w.name, w.labels ?? {});
  cache.set(w as Workload, name);
  return name;
}
