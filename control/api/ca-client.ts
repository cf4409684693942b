// nodemesh.v1.CertificateService (ca.proto): the service definition both sides load, and
// the agent's client. A refused or failed call becomes a NodemeshError NM_ERR_IDENTITY
// carrying the gRPC status code, so the caller can tell "not allowed" from "not reachable".
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { NodemeshError } from '../../common/errors.js';
import { packagePath } from '../../common/paths.js';

const PROTO_DIR = packagePath('control', 'api');

export interface CreateCertificateRequestWire {
  csr: string;
  identity: string;
  /** int64 as a string on the wire (proto-loader longs: String) */
  validitySeconds: string;
}

export interface CreateCertificateResponseWire {
  certChain: string[];
}

let loaded: grpc.ServiceClientConstructor | undefined;

/** The CertificateService constructor (its `.service` is the server-side definition). */
export function certificateService(): grpc.ServiceClientConstructor {
  if (!loaded) {
    const def = protoLoader.loadSync(path.join(PROTO_DIR, 'ca.proto'), { keepCase: false, longs: String, enums: String, defaults: true, arrays: true, includeDirs: [PROTO_DIR] });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { nodemesh: { v1: { CertificateService: grpc.ServiceClientConstructor } } };
    loaded = pkg.nodemesh.v1.CertificateService;
  }
  return loaded;
}

/** A refused or failed certificate request. */
export class CertificateRequestError extends NodemeshError {
  readonly grpcCode: grpc.status;
  constructor(grpcCode: grpc.status, message: string, cause?: unknown) {
    super('NM_ERR_IDENTITY', message, cause === undefined ? undefined : { cause });
    this.name = 'CertificateRequestError';
    this.grpcCode = grpcCode;
  }
}

export interface CertificateSigner {
  /** The chain (leaf first) for `identity` over the CSR's key; rejects with CertificateRequestError. */
  createCertificate(req: { csrPem: string; identity: string; validitySeconds: number }): Promise<string[]>;
  close(): void;
}

type RawClient = grpc.Client & {
  createCertificate(
    req: CreateCertificateRequestWire,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: CreateCertificateResponseWire) => void,
  ): grpc.ClientUnaryCall;
};

export interface CertificateClientOptions {
  /** control plane `host:port` */
  address: string;
  credentials: grpc.ChannelCredentials;
  /** per-call deadline (default 10 s) */
  timeoutMs?: number;
  channelOptions?: grpc.ChannelOptions;
}

export function createCertificateClient(opts: CertificateClientOptions): CertificateSigner {
  const Client = certificateService();
  const client = new Client(opts.address, opts.credentials, opts.channelOptions ?? {}) as unknown as RawClient;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return {
    createCertificate(req) {
      return new Promise((resolve, reject) => {
        client.createCertificate(
          { csr: req.csrPem, identity: req.identity, validitySeconds: String(req.validitySeconds) },
          { deadline: Date.now() + timeoutMs },
          (err, res) => {
            if (err) {
              const code = grpc.status[err.code] ?? String(err.code);
              reject(new CertificateRequestError(err.code, `certificate for ${req.identity} from ${opts.address}: ${code}: ${err.details || err.message}`, err));
            } else resolve(res?.certChain ?? []);
          },
        );
      });
    },
    close: () => client.close(),
  };
}
