// The workload name Istio reports (source_workload, destination_workload): the pod's owner,
// not the pod. istiod reads it from ownerReferences (a ReplicaSet's Deployment, a Job's
// CronJob); the snapshot carries the pod's name and labels, and the controllers' own labels
// say the same thing: a Deployment's pod is `<deployment>-<pod-template-hash>-<5 chars>`
// with the hash in `pod-template-hash`; a StatefulSet's is `<set>-<ordinal>` with
// `statefulset.kubernetes.io/pod-name`; a DaemonSet's `<set>-<5 chars>` with
// `controller-revision-hash` and no ordinal label; a Job's pod has `job-name`
// (batch.kubernetes.io/job-name). A bare pod is its own workload, as in Istio.
import type { Workload } from '../../control/api/snapshot.js';

const cache = new WeakMap<Workload, string>();

/** Istio's workload name of a pod: its controller's name where the labels say it, else the pod's. */
export function workloadName(w: Pick<Workload, 'name' | 'labels'>): string {
  const known = cache.get(w as Workload);
  if (known !== undefined) return known;
  const name = ownerName(w.name, w.labels ?? {});
  cache.set(w as Workload, name);
  return name;
}

function ownerName(pod: string, l: Record<string, string>): string {
  const hash = l['pod-template-hash'];
  if (hash) {
    // <deployment>-<hash>-<suffix>: strip the ReplicaSet's generated suffix, then the hash
    const rs = pod.replace(/-[a-z0-9]{5}$/, '');
    if (rs.endsWith(`-${hash}`)) return rs.slice(0, -hash.length - 1);
    return rs !== pod ? rs : pod;
  }
  const job = l['batch.kubernetes.io/job-name'] ?? l['job-name'];
  if (job) return job;
  if (l['statefulset.kubernetes.io/pod-name'] === pod) return pod.replace(/-\d+$/, '');
  if (l['controller-revision-hash']) return pod.replace(/-[a-z0-9]{5}$/, '');
  return pod;
}
