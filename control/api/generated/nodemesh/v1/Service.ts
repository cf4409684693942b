// Original file: control/api/discovery.proto

import type { ServicePort as _nodemesh_v1_ServicePort, ServicePort__Output as _nodemesh_v1_ServicePort__Output } from '../../nodemesh/v1/ServicePort.js';

export interface Service {
  'name'?: (string);
  'namespace'?: (string);
  /**
   * name.namespace.svc.cluster.local
   */
  'hostname'?: (string);
  /**
   * "" for a headless Service (clusterIP None)
   */
  'clusterIp'?: (string);
  'ports'?: (_nodemesh_v1_ServicePort)[];
  /**
   * the namespaces whose pods see it (Istio's networking.istio.io/exportTo, "." resolved),
   * comma-separated; "~": none; absent: every namespace. Not visible to a source pod's
   * namespace, its ClusterIP resolves as an unknown destination for that pod
   */
  'exportTo'?: (string);
  '_exportTo'?: "exportTo";
}

export interface Service__Output {
  'name': (string);
  'namespace': (string);
  /**
   * name.namespace.svc.cluster.local
   */
  'hostname': (string);
  /**
   * "" for a headless Service (clusterIP None)
   */
  'clusterIp': (string);
  'ports': (_nodemesh_v1_ServicePort__Output)[];
  /**
   * the namespaces whose pods see it (Istio's networking.istio.io/exportTo, "." resolved),
   * comma-separated; "~": none; absent: every namespace. Not visible to a source pod's
   * namespace, its ClusterIP resolves as an unknown destination for that pod
   */
  'exportTo'?: (string);
}
