// Original file: control/api/routing.proto

import type { Destination as _nodemesh_v1_Destination, Destination__Output as _nodemesh_v1_Destination__Output } from '../../nodemesh/v1/Destination.js';

/**
 * VirtualService tcp[] (or TCPRoute): weighted L4 destinations for a port.
 */
export interface TcpRoute {
  /**
   * 0 = any port
   */
  'port'?: (number);
  'destinations'?: (_nodemesh_v1_Destination)[];
}

/**
 * VirtualService tcp[] (or TCPRoute): weighted L4 destinations for a port.
 */
export interface TcpRoute__Output {
  /**
   * 0 = any port
   */
  'port': (number);
  'destinations': (_nodemesh_v1_Destination__Output)[];
}
