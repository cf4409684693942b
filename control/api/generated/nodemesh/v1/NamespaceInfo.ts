// Original file: control/api/discovery.proto


export interface NamespaceInfo {
  'name'?: (string);
  /**
   * its label nodemesh.io/mesh says "enabled": its pods are meshed unless they opt out
   */
  'meshed'?: (boolean);
  /**
   * names of its pods that have no IP yet (being created) and whose own annotation or label
   * says otherwise than the namespace: the CNI plugin's ADD comes before the pod's IP
   */
  'pendingExceptions'?: (string)[];
}

export interface NamespaceInfo__Output {
  'name': (string);
  /**
   * its label nodemesh.io/mesh says "enabled": its pods are meshed unless they opt out
   */
  'meshed': (boolean);
  /**
   * names of its pods that have no IP yet (being created) and whose own annotation or label
   * says otherwise than the namespace: the CNI plugin's ADD comes before the pod's IP
   */
  'pendingExceptions': (string)[];
}
