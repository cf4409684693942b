// Original file: control/api/discovery.proto


/**
 * An east-west gateway: HBONE on `address:port` into network `network`
 */
export interface Gateway {
  /**
   * Istio's topology.istio.io/network of the cluster it serves
   */
  'network'?: (string);
  /**
   * the LoadBalancer ingress IP (status.loadBalancer.ingress[].ip), else spec.externalIPs
   */
  'address'?: (string);
  /**
   * its HBONE port (15008)
   */
  'port'?: (number);
  /**
   * the SPIFFE ID its certificate must carry: its pods' ServiceAccount
   */
  'spiffeId'?: (string);
  /**
   * the cluster it was discovered in
   */
  'cluster'?: (string);
}

/**
 * An east-west gateway: HBONE on `address:port` into network `network`
 */
export interface Gateway__Output {
  /**
   * Istio's topology.istio.io/network of the cluster it serves
   */
  'network': (string);
  /**
   * the LoadBalancer ingress IP (status.loadBalancer.ingress[].ip), else spec.externalIPs
   */
  'address': (string);
  /**
   * its HBONE port (15008)
   */
  'port': (number);
  /**
   * the SPIFFE ID its certificate must carry: its pods' ServiceAccount
   */
  'spiffeId': (string);
  /**
   * the cluster it was discovered in
   */
  'cluster': (string);
}
