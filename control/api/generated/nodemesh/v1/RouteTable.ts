// Original file: control/api/routing.proto

import type { HttpRoute as _nodemesh_v1_HttpRoute, HttpRoute__Output as _nodemesh_v1_HttpRoute__Output } from '../../nodemesh/v1/HttpRoute.js';
import type { TcpRoute as _nodemesh_v1_TcpRoute, TcpRoute__Output as _nodemesh_v1_TcpRoute__Output } from '../../nodemesh/v1/TcpRoute.js';

/**
 * The routes for one Service host. A producer table (consumer_namespace "") applies to every
 * caller; a GAMMA consumer route (HTTPRoute in another namespace) yields a table that
 * applies only to callers in that namespace and wins over the producer table for them.
 */
export interface RouteTable {
  /**
   * Service hostname name.ns.svc.cluster.local
   */
  'host'?: (string);
  /**
   * "" = applies to every caller; otherwise only to callers in this namespace
   */
  'consumerNamespace'?: (string);
  /**
   * first match wins (VirtualService order; HTTPRoute rules sorted by Gateway API precedence)
   */
  'http'?: (_nodemesh_v1_HttpRoute)[];
  'tcp'?: (_nodemesh_v1_TcpRoute)[];
  /**
   * where the table came from, e.g. "VirtualService bookinfo/reviews"
   */
  'source'?: (string);
  /**
   * What to do when no http route matches: "notFound" answers 404 (Envoy's NR), as both an
   * Istio VirtualService and Gateway API do; the control plane appends a route to the
   * Service itself for each Service port none of the table's rules can match, so such ports
   * behave as if they had no routes. "passthrough" (a table with tcp routes only): send the
   * request to the Service as if it had no routes.
   */
  'noMatch'?: (string);
}

/**
 * The routes for one Service host. A producer table (consumer_namespace "") applies to every
 * caller; a GAMMA consumer route (HTTPRoute in another namespace) yields a table that
 * applies only to callers in that namespace and wins over the producer table for them.
 */
export interface RouteTable__Output {
  /**
   * Service hostname name.ns.svc.cluster.local
   */
  'host': (string);
  /**
   * "" = applies to every caller; otherwise only to callers in this namespace
   */
  'consumerNamespace': (string);
  /**
   * first match wins (VirtualService order; HTTPRoute rules sorted by Gateway API precedence)
   */
  'http': (_nodemesh_v1_HttpRoute__Output)[];
  'tcp': (_nodemesh_v1_TcpRoute__Output)[];
  /**
   * where the table came from, e.g. "VirtualService bookinfo/reviews"
   */
  'source': (string);
  /**
   * What to do when no http route matches: "notFound" answers 404 (Envoy's NR), as both an
   * Istio VirtualService and Gateway API do; the control plane appends a route to the
   * Service itself for each Service port none of the table's rules can match, so such ports
   * behave as if they had no routes. "passthrough" (a table with tcp routes only): send the
   * request to the Service as if it had no routes.
   */
  'noMatch': (string);
}
