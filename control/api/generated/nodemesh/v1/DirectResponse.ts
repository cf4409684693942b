// Original file: control/api/routing.proto


export interface DirectResponse {
  'status'?: (number);
  'body'?: (string);
}

export interface DirectResponse__Output {
  'status': (number);
  'body': (string);
}
