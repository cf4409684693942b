// nodemesh.v1.CertificateService (ca.proto): the service definition both sides load, and
// the agent's client. A refused or failed call becomes a NodemeshError NM_ERR_IDENTITY
// carrying the gRPC status code, so the caller can tell "not allowed" from "not reachable".
import * as grpc from '@grpc/grpc-js';
import { CertificateRequestError, type CertificateSigner } from './certificate-signer.js';
import type { CertificateServiceClient } from './generated/nodemesh/v1/CertificateService.js';
import type { CreateCertificateRequest__Output } from './generated/nodemesh/v1/CreateCertificateRequest.js';
import type { CreateCertificateResponse__Output } from './generated/nodemesh/v1/CreateCertificateResponse.js';
import { loadProto } from './protos.js';
import { controlTarget } from './control-target.js';

export { CertificateRequestError, type CertificateSigner };

/** A request as decoded (validitySeconds, an int64, as a decimal string: longs: String). */
export type CreateCertificateRequestWire = CreateCertificateRequest__Output;
export type CreateCertificateResponseWire = CreateCertificateResponse__Output;

let loaded: grpc.ServiceClientConstructor | undefined;

/** The CertificateService constructor (its `.service` is the server-side definition). */
export function certificateService(): grpc.ServiceClientConstructor {
  if (!loaded) {
    const pkg = loadProto('ca.proto') as unknown as { nodemesh: { v1: { CertificateService: grpc.ServiceClientConstructor } } };
    loaded = pkg.nodemesh.v1.CertificateService;
  }
  return loaded;
}

export interface CertificateClientOptions {
  /** control plane `host:port`, or several replicas' IP `host:port` separated by commas (control-target.ts) */
  address: string;
  credentials: grpc.ChannelCredentials;
  /** per-call deadline (default 10 s) */
  timeoutMs?: number;
  channelOptions?: grpc.ChannelOptions;
}

export function createCertificateClient(opts: CertificateClientOptions): CertificateSigner {
  const Client = certificateService();
  const target = controlTarget(opts.address);
  const client = new Client(target.target, opts.credentials, { ...target.channelOptions, ...opts.channelOptions }) as unknown as CertificateServiceClient;
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
