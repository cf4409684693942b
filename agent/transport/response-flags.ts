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
  UpstreamProtocolError: 'UPE',
  // ztunnel (L4)
  Deny: 'DENY',
  Connect: 'CONNECT',
  TlsFailure: 'TLS_FAILURE',
  H2HandshakeFailure: 'H2_HANDSHAKE_FAILURE',
  IdentityError: 'IDENTITY_ERROR',
} as const;

export type ResponseFlagValue = (typeof ResponseFlag)[keyof typeof ResponseFlag];

/** Envoy's order of response flags in a flags string ("UT,URX", never "URX,UT"). */
const FLAG_ORDER = ['LH', 'UH', 'UT', 'LR', 'UR', 'UF', 'UC', 'UO', 'NR', 'DI', 'FI', 'RL', 'UAEX', 'RLSE', 'DC', 'URX', 'SI', 'IH', 'DPE', 'UMSDR', 'RFCF', 'NFCF', 'DT', 'UPE', 'NC', 'OM'];

function flagRank(f: string): number {
  const i = FLAG_ORDER.indexOf(f);
  return i < 0 ? FLAG_ORDER.length : i;
}

/** `flags` with `flag` added: several are joined with "," in Envoy's order, each once. */
export function withResponseFlag(flags: string, flag: string): string {
  if (flag === ResponseFlag.None) return flags;
  if (flags === ResponseFlag.None) return flag;
  const all = flags.split(',');
  if (all.includes(flag)) return flags;
  all.push(flag);
  all.sort((a, b) => flagRank(a) - flagRank(b));
  return all.join(',');
}
