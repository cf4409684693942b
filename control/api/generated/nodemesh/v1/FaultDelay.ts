// Original file: control/api/routing.proto


export interface FaultDelay {
  'fixedDelayMs'?: (number);
  'percentage'?: (number | string);
}

export interface FaultDelay__Output {
  'fixedDelayMs': (number);
  'percentage': (number);
}
