// Original file: control/api/routing.proto

import type { LocalityDistribute as _nodemesh_v1_LocalityDistribute, LocalityDistribute__Output as _nodemesh_v1_LocalityDistribute__Output } from '../../nodemesh/v1/LocalityDistribute.js';
import type { LocalityFailover as _nodemesh_v1_LocalityFailover, LocalityFailover__Output as _nodemesh_v1_LocalityFailover__Output } from '../../nodemesh/v1/LocalityFailover.js';

export interface LocalityLb {
  /**
   * localityLbSetting.enabled: false turns locality load balancing off for this destination
   */
  'enabled'?: (boolean);
  /**
   * weighted distribution from the source's locality (the first rule whose `from` matches);
   * set at most one of distribute and failover/failover_priority
   */
  'distribute'?: (_nodemesh_v1_LocalityDistribute)[];
  /**
   * region failover order: from region -> to region, tried after the source's own region
   */
  'failover'?: (_nodemesh_v1_LocalityFailover)[];
  /**
   * label keys; an endpoint's priority is how many of them, in order, match the source's
   */
  'failoverPriority'?: (string)[];
}

export interface LocalityLb__Output {
  /**
   * localityLbSetting.enabled: false turns locality load balancing off for this destination
   */
  'enabled': (boolean);
  /**
   * weighted distribution from the source's locality (the first rule whose `from` matches);
   * set at most one of distribute and failover/failover_priority
   */
  'distribute': (_nodemesh_v1_LocalityDistribute__Output)[];
  /**
   * region failover order: from region -> to region, tried after the source's own region
   */
  'failover': (_nodemesh_v1_LocalityFailover__Output)[];
  /**
   * label keys; an endpoint's priority is how many of them, in order, match the source's
   */
  'failoverPriority': (string)[];
}
