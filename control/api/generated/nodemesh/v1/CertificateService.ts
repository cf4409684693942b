// Original file: control/api/ca.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { CreateCertificateRequest as _nodemesh_v1_CreateCertificateRequest, CreateCertificateRequest__Output as _nodemesh_v1_CreateCertificateRequest__Output } from '../../nodemesh/v1/CreateCertificateRequest.js';
import type { CreateCertificateResponse as _nodemesh_v1_CreateCertificateResponse, CreateCertificateResponse__Output as _nodemesh_v1_CreateCertificateResponse__Output } from '../../nodemesh/v1/CreateCertificateResponse.js';

export interface CertificateServiceClient extends grpc.Client {
  /**
   * Signs the CSR's public key for `identity`, if the caller's node runs a pod with that
   * identity right now. Errors: UNAUTHENTICATED (no valid node credential),
   * PERMISSION_DENIED (no such pod on the caller's node), INVALID_ARGUMENT (bad CSR,
   * identity or validity), UNAVAILABLE (the control plane has no snapshot yet).
   */
  CreateCertificate(argument: _nodemesh_v1_CreateCertificateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_nodemesh_v1_CreateCertificateResponse__Output>): grpc.ClientUnaryCall;
  CreateCertificate(argument: _nodemesh_v1_CreateCertificateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_nodemesh_v1_CreateCertificateResponse__Output>): grpc.ClientUnaryCall;
  CreateCertificate(argument: _nodemesh_v1_CreateCertificateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_nodemesh_v1_CreateCertificateResponse__Output>): grpc.ClientUnaryCall;
  CreateCertificate(argument: _nodemesh_v1_CreateCertificateRequest, callback: grpc.requestCallback<_nodemesh_v1_CreateCertificateResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Signs the CSR's public key for `identity`, if the caller's node runs a pod with that
   * identity right now. Errors: UNAUTHENTICATED (no valid node credential),
   * PERMISSION_DENIED (no such pod on the caller's node), INVALID_ARGUMENT (bad CSR,
   * identity or validity), UNAVAILABLE (the control plane has no snapshot yet).
   */
  createCertificate(argument: _nodemesh_v1_CreateCertificateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_nodemesh_v1_CreateCertificateResponse__Output>): grpc.ClientUnaryCall;
  createCertificate(argument: _nodemesh_v1_CreateCertificateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_nodemesh_v1_CreateCertificateResponse__Output>): grpc.ClientUnaryCall;
  createCertificate(argument: _nodemesh_v1_CreateCertificateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_nodemesh_v1_CreateCertificateResponse__Output>): grpc.ClientUnaryCall;
  createCertificate(argument: _nodemesh_v1_CreateCertificateRequest, callback: grpc.requestCallback<_nodemesh_v1_CreateCertificateResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface CertificateServiceHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Signs the CSR's public key for `identity`, if the caller's node runs a pod with that
   * identity right now. Errors: UNAUTHENTICATED (no valid node credential),
   * PERMISSION_DENIED (no such pod on the caller's node), INVALID_ARGUMENT (bad CSR,
   * identity or validity), UNAVAILABLE (the control plane has no snapshot yet).
   */
  CreateCertificate: grpc.handleUnaryCall<_nodemesh_v1_CreateCertificateRequest__Output, _nodemesh_v1_CreateCertificateResponse>;
  
}

export interface CertificateServiceDefinition extends grpc.ServiceDefinition {
  CreateCertificate: MethodDefinition<_nodemesh_v1_CreateCertificateRequest, _nodemesh_v1_CreateCertificateResponse, _nodemesh_v1_CreateCertificateRequest__Output, _nodemesh_v1_CreateCertificateResponse__Output>
}
