// Original file: control/api/discovery.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { Snapshot as _nodemesh_v1_Snapshot, Snapshot__Output as _nodemesh_v1_Snapshot__Output } from '../../nodemesh/v1/Snapshot.js';
import type { WatchRequest as _nodemesh_v1_WatchRequest, WatchRequest__Output as _nodemesh_v1_WatchRequest__Output } from '../../nodemesh/v1/WatchRequest.js';

export interface DiscoveryClient extends grpc.Client {
  /**
   * Sends the current snapshot at once, then every new version, until the agent hangs up.
   */
  Watch(argument: _nodemesh_v1_WatchRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_nodemesh_v1_Snapshot__Output>;
  Watch(argument: _nodemesh_v1_WatchRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_nodemesh_v1_Snapshot__Output>;
  /**
   * Sends the current snapshot at once, then every new version, until the agent hangs up.
   */
  watch(argument: _nodemesh_v1_WatchRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_nodemesh_v1_Snapshot__Output>;
  watch(argument: _nodemesh_v1_WatchRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_nodemesh_v1_Snapshot__Output>;
  
}

export interface DiscoveryHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Sends the current snapshot at once, then every new version, until the agent hangs up.
   */
  Watch: grpc.handleServerStreamingCall<_nodemesh_v1_WatchRequest__Output, _nodemesh_v1_Snapshot>;
  
}

export interface DiscoveryDefinition extends grpc.ServiceDefinition {
  Watch: MethodDefinition<_nodemesh_v1_WatchRequest, _nodemesh_v1_Snapshot, _nodemesh_v1_WatchRequest__Output, _nodemesh_v1_Snapshot__Output>
}
