// Original file: control/api/routing.proto

import type { RouteTable as _nodemesh_v1_RouteTable, RouteTable__Output as _nodemesh_v1_RouteTable__Output } from '../../nodemesh/v1/RouteTable.js';
import type { DestinationPolicy as _nodemesh_v1_DestinationPolicy, DestinationPolicy__Output as _nodemesh_v1_DestinationPolicy__Output } from '../../nodemesh/v1/DestinationPolicy.js';

export interface RoutingConfig {
  'routes'?: (_nodemesh_v1_RouteTable)[];
  'destinations'?: (_nodemesh_v1_DestinationPolicy)[];
}

export interface RoutingConfig__Output {
  'routes': (_nodemesh_v1_RouteTable__Output)[];
  'destinations': (_nodemesh_v1_DestinationPolicy__Output)[];
}
