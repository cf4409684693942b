// Envoy response flags (and ztunnel's L4 additions), defined once. "-" when none.
export const ResponseFlag = {
  None: '-',
  NoHealthyUpstream: 'UH',
  UpstreamConnectionFailure: 'UF',
  UpstreamOverflow: 'UO',
  UpstreamRetryLimitExceeded: 'URX',
  NoRoute: 'NR',
  DownstreamConnectionTermination: 'DC',
  UpstreamRequestTimeout: 'UT',
  UpstreamConnectionTermination: 'UC',
  LocalReset: 'LR',
  UpstreamReset: 'UR',
  DelayInjected: 'DI',
  FaultInjected: 'FI',
  RateLimited: 'RL',
  NoClusterFound: 'NC',
  // ztunnel (L4)
  Deny: 'DENY',
  Connect: 'CONNECT',
  TlsFailure: 'TLS_FAILURE',
  H2HandshakeFailure: 'H2_HANDSHAKE_FAILURE',
  IdentityError: 'IDENTITY_ERROR',
} as const;

export type ResponseFlagValue = (typeof ResponseFlag)[keyof typeof ResponseFlag];
