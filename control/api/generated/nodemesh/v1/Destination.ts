// Original file: control/api/routing.proto

import type { Headers as _nodemesh_v1_Headers, Headers__Output as _nodemesh_v1_Headers__Output } from '../../nodemesh/v1/Headers.js';

export interface Destination {
  /**
   * Service hostname name.ns.svc.cluster.local
   */
  'host'?: (string);
  /**
   * DestinationRule subset name; "" = every endpoint
   */
  'subset'?: (string);
  /**
   * Service port; 0 = the port the request came in on
   */
  'port'?: (number);
  /**
   * relative weight; share = weight / sum of the route's weights
   */
  'weight'?: (number);
  'headers'?: (_nodemesh_v1_Headers | null);
  /**
   * 0: forward. Otherwise answer this status instead of forwarding this destination's share
   * (Gateway API: "500 status codes MUST be returned for requests that would have otherwise
   * been routed to an invalid backend", e.g. a backendRef to a Service that does not exist).
   */
  'failStatus'?: (number);
}

export interface Destination__Output {
  /**
   * Service hostname name.ns.svc.cluster.local
   */
  'host': (string);
  /**
   * DestinationRule subset name; "" = every endpoint
   */
  'subset': (string);
  /**
   * Service port; 0 = the port the request came in on
   */
  'port': (number);
  /**
   * relative weight; share = weight / sum of the route's weights
   */
  'weight': (number);
  'headers': (_nodemesh_v1_Headers__Output | null);
  /**
   * 0: forward. Otherwise answer this status instead of forwarding this destination's share
   * (Gateway API: "500 status codes MUST be returned for requests that would have otherwise
   * been routed to an invalid backend", e.g. a backendRef to a Service that does not exist).
   */
  'failStatus': (number);
}
