// Original file: control/api/routing.proto


export interface LocalityFailover {
  'from'?: (string);
  'to'?: (string);
}

export interface LocalityFailover__Output {
  'from': (string);
  'to': (string);
}
