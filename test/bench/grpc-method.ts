// The benchmark's gRPC method, shared by its server, its check client and the request file
// h2load posts: raw bytes in and out, and the wire form of one request message.
import type * as grpc from '@grpc/grpc-js';

export const GRPC_METHOD = '/nodemesh.bench.Echo/Call';

const raw = (b: Buffer) => b;

export function grpcMethod(): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: GRPC_METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  };
}

/**
 * One gRPC message as it goes in a DATA frame ("Length-Prefixed-Message": a compressed-flag
 * byte 0, the length as 4 bytes big-endian, the message): what h2load posts as its body.
 */
export function lengthPrefixed(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}
