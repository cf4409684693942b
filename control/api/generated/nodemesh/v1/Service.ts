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
}
