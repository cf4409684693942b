// Original file: control/api/discovery.proto


export interface Workload {
  /**
   * "namespace/name"
   */
  'uid'?: (string);
  'name'?: (string);
  'namespace'?: (string);
  /**
   * spec.nodeName
   */
  'node'?: (string);
  /**
   * status.podIP (pods without an IP are not in the snapshot)
   */
  'ip'?: (string);
  /**
   * spec.serviceAccountName
   */
  'serviceAccount'?: (string);
  'labels'?: ({[key: string]: string});
  /**
   * opted in: pod annotation nodemesh.io/mesh (enabled|disabled) wins over the namespace label
   */
  'meshed'?: (boolean);
  /**
   * spiffe://<trust domain>/ns/<namespace>/sa/<service account>
   */
  'spiffeId'?: (string);
  /**
   * while its node proxy is down, its new connections bypass the proxy instead of being
   * refused: the Namespace says nodemesh.io/fail-mode: open (annotation, else label) and no
   * port of the workload is STRICT (STRICT always fails closed); false (closed) otherwise
   */
  'failOpen'?: (boolean);
  /**
   * the workload name Istio reports (source_workload, destination_workload): the owning
   * Deployment, StatefulSet, DaemonSet, Job or CronJob, from ownerReferences as istiod derives
   * it; the pod's own name for a bare pod (control/api/workload-name.ts)
   */
  'workloadName'?: (string);
  /**
   * the cluster it runs in (the control plane's --cluster, Istio's cluster ID); absent: the
   * default, "Kubernetes", as Istio names a cluster it was not told the name of
   */
  'cluster'?: (string);
  /**
   * the network it runs in (topology.istio.io/network: the control plane's --network, or the
   * remote cluster's); absent: the one flat network (""). A node proxy reaches a workload of
   * another network through that network's east-west gateway (Snapshot.gateways)
   */
  'network'?: (string);
  '_cluster'?: "cluster";
  '_network'?: "network";
}

export interface Workload__Output {
  /**
   * "namespace/name"
   */
  'uid': (string);
  'name': (string);
  'namespace': (string);
  /**
   * spec.nodeName
   */
  'node': (string);
  /**
   * status.podIP (pods without an IP are not in the snapshot)
   */
  'ip': (string);
  /**
   * spec.serviceAccountName
   */
  'serviceAccount': (string);
  'labels': ({[key: string]: string});
  /**
   * opted in: pod annotation nodemesh.io/mesh (enabled|disabled) wins over the namespace label
   */
  'meshed': (boolean);
  /**
   * spiffe://<trust domain>/ns/<namespace>/sa/<service account>
   */
  'spiffeId': (string);
  /**
   * while its node proxy is down, its new connections bypass the proxy instead of being
   * refused: the Namespace says nodemesh.io/fail-mode: open (annotation, else label) and no
   * port of the workload is STRICT (STRICT always fails closed); false (closed) otherwise
   */
  'failOpen': (boolean);
  /**
   * the workload name Istio reports (source_workload, destination_workload): the owning
   * Deployment, StatefulSet, DaemonSet, Job or CronJob, from ownerReferences as istiod derives
   * it; the pod's own name for a bare pod (control/api/workload-name.ts)
   */
  'workloadName': (string);
  /**
   * the cluster it runs in (the control plane's --cluster, Istio's cluster ID); absent: the
   * default, "Kubernetes", as Istio names a cluster it was not told the name of
   */
  'cluster'?: (string);
  /**
   * the network it runs in (topology.istio.io/network: the control plane's --network, or the
   * remote cluster's); absent: the one flat network (""). A node proxy reaches a workload of
   * another network through that network's east-west gateway (Snapshot.gateways)
   */
  'network'?: (string);
}
