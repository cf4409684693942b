// Original file: control/api/routing.proto

import type { Destination as _nodemesh_v1_Destination, Destination__Output as _nodemesh_v1_Destination__Output } from '../../nodemesh/v1/Destination.js';

export interface Mirror {
  'destination'?: (_nodemesh_v1_Destination | null);
  /**
   * 0-100
   */
  'percentage'?: (number | string);
}

export interface Mirror__Output {
  'destination': (_nodemesh_v1_Destination__Output | null);
  /**
   * 0-100
   */
  'percentage': (number);
}
