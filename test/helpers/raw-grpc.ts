// gRPC methods whose messages are raw bytes (no protobuf), for tests that need real grpc-js
// clients and servers without a .proto.
import type * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer) => b;

/** A method at `path` (`/package.Service/Method`) passing its messages through as they are. */
export function rawMethod(path: string, requestStream = false, responseStream = false): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}
