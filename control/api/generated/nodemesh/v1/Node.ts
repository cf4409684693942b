// Original file: control/api/discovery.proto


export interface Node {
  'name'?: (string);
  /**
   * where its node proxy listens (HBONE 15008): the InternalIP, else a pod's status.hostIP
   * on that node; "" when unknown
   */
  'ip'?: (string);
  /**
   * "region/zone/subzone" from its labels topology.kubernetes.io/region, topology.kubernetes.io/zone
   * and topology.istio.io/subzone (Istio's locality); "" when it has none
   */
  'locality'?: (string);
  /**
   * its network (Istio's topology.istio.io/network); absent: the one flat network ("")
   */
  'network'?: (string);
  '_locality'?: "locality";
  '_network'?: "network";
}

export interface Node__Output {
  'name': (string);
  /**
   * where its node proxy listens (HBONE 15008): the InternalIP, else a pod's status.hostIP
   * on that node; "" when unknown
   */
  'ip': (string);
  /**
   * "region/zone/subzone" from its labels topology.kubernetes.io/region, topology.kubernetes.io/zone
   * and topology.istio.io/subzone (Istio's locality); "" when it has none
   */
  'locality'?: (string);
  /**
   * its network (Istio's topology.istio.io/network); absent: the one flat network ("")
   */
  'network'?: (string);
}
