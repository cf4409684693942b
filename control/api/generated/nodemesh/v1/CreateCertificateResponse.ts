// Original file: control/api/ca.proto


export interface CreateCertificateResponse {
  /**
   * PEM certificates, one per entry: the leaf first, then intermediates, the root last
   */
  'certChain'?: (string)[];
}

export interface CreateCertificateResponse__Output {
  /**
   * PEM certificates, one per entry: the leaf first, then intermediates, the root last
   */
  'certChain': (string)[];
}
