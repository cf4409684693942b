// Original file: control/api/routing.proto


export interface LocalityDistribute {
  /**
   * "region/zone/subzone", "*" as its last part matching anything below
   */
  'from'?: (string);
  /**
   * locality pattern -> weight (the weights of one rule sum to 100)
   */
  'to'?: ({[key: string]: number});
}

export interface LocalityDistribute__Output {
  /**
   * "region/zone/subzone", "*" as its last part matching anything below
   */
  'from': (string);
  /**
   * locality pattern -> weight (the weights of one rule sum to 100)
   */
  'to': ({[key: string]: number});
}
