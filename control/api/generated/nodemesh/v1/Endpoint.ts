// Original file: control/api/discovery.proto


export interface Endpoint {
  'ip'?: (string);
  'port'?: (number);
  /**
   * "namespace/name" of the pod
   */
  'workload'?: (string);
  'node'?: (string);
}

export interface Endpoint__Output {
  'ip': (string);
  'port': (number);
  /**
   * "namespace/name" of the pod
   */
  'workload': (string);
  'node': (string);
}
