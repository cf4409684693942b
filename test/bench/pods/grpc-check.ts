// One gRPC call with grpc-js (runs inside a lab pod), to prove a path carries gRPC before
// h2load loads it (h2load counts HTTP 200s; a gRPC error would be a 200 with a grpc-status
// trailer). Prints {"ok": true, "bytes": N} or {"ok": false, "error": "..."}.
//   node grpc-check.js HOST:PORT
import * as grpc from '@grpc/grpc-js';
import { grpcMethod } from '../grpc-method.js';

const target = process.argv[2]!;
const Client = grpc.makeGenericClientConstructor({ call: grpcMethod() }, 'Echo');
const client = new Client(target, grpc.credentials.createInsecure()) as unknown as {
  call(req: Buffer, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
  close(): void;
};
client.call(Buffer.from('check'), { deadline: Date.now() + 10_000 }, (err, res) => {
  process.stdout.write(
    JSON.stringify(err ? { ok: false, error: `${grpc.status[err.code]}: ${err.details}` } : { ok: true, bytes: res?.length ?? 0 }) + '\n',
  );
  client.close();
  process.exit(0);
});
