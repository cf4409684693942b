// Original file: control/api/routing.proto


export interface FaultAbort {
  /**
   * 0 when grpc_status is set
   */
  'httpStatus'?: (number);
  'grpcStatus'?: (string);
  'percentage'?: (number | string);
}

export interface FaultAbort__Output {
  /**
   * 0 when grpc_status is set
   */
  'httpStatus': (number);
  'grpcStatus': (string);
  'percentage': (number);
}
