// Original file: control/api/routing.proto


export interface HeaderOps {
  'set'?: ({[key: string]: string});
  'add'?: ({[key: string]: string});
  'remove'?: (string)[];
}

export interface HeaderOps__Output {
  'set': ({[key: string]: string});
  'add': ({[key: string]: string});
  'remove': (string)[];
}
