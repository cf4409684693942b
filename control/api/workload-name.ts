// The workload name Istio reports (source_workload, destination_workload): the pod's owner,
// not the pod. One rule for both sides of the contract: the control plane derives it for
// each pod into the snapshot (Workload.workloadName); an agent fed by an older control plane
// (no workloadName) falls back to the pod's labels.
//
// The control plane follows istiod (pkg/kube GetWorkloadMetaFromPod / GetDeployMetaFromPod),
// which reads the pod alone — no ReplicaSet or Job is watched:
// - the label `service.istio.io/workload-name` wins;
// - a pod whose name was generated (`metadata.generateName`) and has a controller
//   ownerReference is named after that controller, except:
//   a ReplicaSet named `<x>-<pod-template-hash>` → the Deployment `<x>`;
//   a Job named `<x>-<8 to 10 digits>` (the CronJob controller's scheduled time) → the CronJob `<x>`;
//   a StatefulSet, DaemonSet, Job or any other controller keeps its own name;
// - otherwise (a bare pod) the pod's name.
// A pod without ownerReferences (the lab's files) goes through the label heuristic below,
// which gives the same names for the controllers' own naming.
export const WORKLOAD_NAME_LABEL = 'service.istio.io/workload-name';

export interface OwnerReference {
  apiVersion?: string;
  kind?: string;
  name?: string;
  controller?: boolean;
}

export interface PodIdentity {
  name: string;
  generateName?: string | undefined;
  ownerReferences?: readonly OwnerReference[] | undefined;
  labels: Record<string, string>;
}

const CRONJOB_JOB = /^(.+)-\d{8,10}$/;

/** Istio's workload name of a pod, from its controller's ownerReference (see above). */
export function podWorkloadName(pod: PodIdentity): string {
  const override = pod.labels[WORKLOAD_NAME_LABEL];
  if (override) return override;
  const controller = pod.generateName ? pod.ownerReferences?.find((r) => r.controller === true && typeof r.name === 'string' && r.name !== '') : undefined;
  if (!controller) return workloadNameFromLabels(pod.name, pod.labels);
  const owner = controller.name!;
  const hash = pod.labels['pod-template-hash'];
  if (controller.kind === 'ReplicaSet' && hash && owner.endsWith(`-${hash}`)) return owner.slice(0, -hash.length - 1);
  if (controller.kind === 'Job') return CRONJOB_JOB.exec(owner)?.[1] ?? owner;
  return owner;
}

/**
 * Without ownerReferences, what the controllers' own labels say: a Deployment's pod is
 * `<deployment>-<pod-template-hash>-<5 chars>` with the hash in `pod-template-hash`; a
 * StatefulSet's is `<set>-<ordinal>` with `statefulset.kubernetes.io/pod-name`; a
 * DaemonSet's `<set>-<5 chars>` with `controller-revision-hash` and no ordinal label; a
 * Job's pod has `job-name` (batch.kubernetes.io/job-name). A bare pod is its own workload.
 */
export function workloadNameFromLabels(pod: string, l: Record<string, string>): string {
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
