// The mesh's well-known ports, numbered as Istio numbers them so that operators, network
// policies and dashboards find them where they expect: one place for every file that
// listens on, dials, polls or documents one of them.

/** The node agent's ports. */
export const AGENT_PORTS = {
  /** the outbound proxy: connections the datapath redirected from the node's pods */
  outbound: 15001,
  /** the inbound capture: plaintext connections to the node's meshed pods, steered by tc */
  inbound: 15006,
  /** HBONE: mTLS HTTP/2 CONNECT tunnels from other nodes' proxies */
  hbone: 15008,
  /** Prometheus /metrics, /healthz/ready and the debug views */
  admin: 15020,
} as const;

/** The control plane's ports. */
export const CONTROL_PORTS = {
  /** gRPC discovery and the CA (TLS) */
  grpc: 15012,
  /** Prometheus /metrics, /healthz/ready and the configuration status */
  admin: 15014,
} as const;

/** SO_MARK of the proxy's own upstream sockets, which the datapath never redirects (Istio's 1337). */
export const PROXY_MARK = 0x539;

/**
 * What an east-west gateway's admin port says it is (`mode` in its /debug/state): the CLI tells
 * it from a node's agent, as both watch the control plane under their node's name.
 */
export const GATEWAY_ADMIN_MODE = 'east-west gateway';
