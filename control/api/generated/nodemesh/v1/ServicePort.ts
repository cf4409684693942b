// Original file: control/api/discovery.proto

import type { Endpoint as _nodemesh_v1_Endpoint, Endpoint__Output as _nodemesh_v1_Endpoint__Output } from '../../nodemesh/v1/Endpoint.js';

export interface ServicePort {
  'name'?: (string);
  'port'?: (number);
  /**
   * numeric target port as resolved against the endpoint pods (named ports resolved); 0 when
   * a named port resolves to different numbers on different pods, or there are none
   */
  'targetPort'?: (number);
  /**
   * TCP (only TCP is meshed)
   */
  'protocol'?: (string);
  /**
   * e.g. http, http2, grpc, kubernetes.io/h2c: declares the port's protocol HTTP
   */
  'appProtocol'?: (string);
  /**
   * the ready pods the Service selects, sorted by IP, port, workload
   */
  'endpoints'?: (_nodemesh_v1_Endpoint)[];
}

export interface ServicePort__Output {
  'name': (string);
  'port': (number);
  /**
   * numeric target port as resolved against the endpoint pods (named ports resolved); 0 when
   * a named port resolves to different numbers on different pods, or there are none
   */
  'targetPort': (number);
  /**
   * TCP (only TCP is meshed)
   */
  'protocol': (string);
  /**
   * e.g. http, http2, grpc, kubernetes.io/h2c: declares the port's protocol HTTP
   */
  'appProtocol': (string);
  /**
   * the ready pods the Service selects, sorted by IP, port, workload
   */
  'endpoints': (_nodemesh_v1_Endpoint__Output)[];
}
