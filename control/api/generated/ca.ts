import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { CertificateServiceClient as _nodemesh_v1_CertificateServiceClient, CertificateServiceDefinition as _nodemesh_v1_CertificateServiceDefinition } from './nodemesh/v1/CertificateService.js';
import type { CreateCertificateRequest as _nodemesh_v1_CreateCertificateRequest, CreateCertificateRequest__Output as _nodemesh_v1_CreateCertificateRequest__Output } from './nodemesh/v1/CreateCertificateRequest.js';
import type { CreateCertificateResponse as _nodemesh_v1_CreateCertificateResponse, CreateCertificateResponse__Output as _nodemesh_v1_CreateCertificateResponse__Output } from './nodemesh/v1/CreateCertificateResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  nodemesh: {
    v1: {
      CertificateService: SubtypeConstructor<typeof grpc.Client, _nodemesh_v1_CertificateServiceClient> & { service: _nodemesh_v1_CertificateServiceDefinition }
      CreateCertificateRequest: MessageTypeDefinition<_nodemesh_v1_CreateCertificateRequest, _nodemesh_v1_CreateCertificateRequest__Output>
      CreateCertificateResponse: MessageTypeDefinition<_nodemesh_v1_CreateCertificateResponse, _nodemesh_v1_CreateCertificateResponse__Output>
    }
  }
}

