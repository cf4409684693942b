// Original file: control/api/discovery.proto


export interface Node {
  'name'?: (string);
  /**
   * where its node proxy listens (HBONE 15008): the InternalIP, else a pod's status.hostIP
   * on that node; "" when unknown
   */
  'ip'?: (string);
}

export interface Node__Output {
  'name': (string);
  /**
   * where its node proxy listens (HBONE 15008): the InternalIP, else a pod's status.hostIP
   * on that node; "" when unknown
   */
  'ip': (string);
}
