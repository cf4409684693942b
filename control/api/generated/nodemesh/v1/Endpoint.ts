// Original file: control/api/discovery.proto


export interface Endpoint {
  'ip'?: (string);
  'port'?: (number);
  /**
   * "namespace/name" of the pod
   */
  'workload'?: (string);
  'node'?: (string);
  /**
   * "region/zone/subzone": the pod's label istio-locality ("region.zone.subzone"), else its
   * node's locality; "" when unknown. Locality load balancing groups endpoints by it.
   */
  'locality'?: (string);
  '_locality'?: "locality";
}

export interface Endpoint__Output {
  'ip': (string);
  'port': (number);
  /**
   * "namespace/name" of the pod
   */
  'workload': (string);
  'node': (string);
  /**
   * "region/zone/subzone": the pod's label istio-locality ("region.zone.subzone"), else its
   * node's locality; "" when unknown. Locality load balancing groups endpoints by it.
   */
  'locality'?: (string);
}
