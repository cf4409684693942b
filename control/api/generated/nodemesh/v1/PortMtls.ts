// Original file: control/api/security.proto


export interface PortMtls {
  /**
   * the workload's (container) port
   */
  'port'?: (number);
  /**
   * STRICT | PERMISSIVE | DISABLE
   */
  'mode'?: (string);
}

export interface PortMtls__Output {
  /**
   * the workload's (container) port
   */
  'port': (number);
  /**
   * STRICT | PERMISSIVE | DISABLE
   */
  'mode': (string);
}
