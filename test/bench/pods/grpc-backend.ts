// The benchmark's gRPC backend (runs inside a lab pod): a grpc-js server with one unary
// method, /nodemesh.bench.Echo/Call, whose messages are raw bytes (no .proto): every call is
// answered with a 1 KiB message. GRPC_PORT (50051).
import * as grpc from '@grpc/grpc-js';
import { GRPC_METHOD, grpcMethod } from '../grpc-method.js';

const reply = Buffer.alloc(1024, 'g');
const server = new grpc.Server({ 'grpc.max_concurrent_streams': 1000 });
server.addService(
  { call: grpcMethod() },
  { call: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, reply) },
);
server.bindAsync(`0.0.0.0:${Number(process.env.GRPC_PORT ?? 50051)}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`grpc backend: ${err.message}`);
    process.exit(1);
  }
  console.log(`bench grpc backend on ${GRPC_METHOD}`);
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
