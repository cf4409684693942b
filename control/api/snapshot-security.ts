// Security policy in the snapshot (mirrors security.proto): what Istio PeerAuthentication
// and AuthorizationPolicy compile to. The agent consumes only this.

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface SecurityConfig {}

export function emptySecurity(): SecurityConfig {
  return {};
}
