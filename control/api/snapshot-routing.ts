// Traffic management in the snapshot (mirrors routing.proto): what Istio VirtualService /
// DestinationRule and Gateway API HTTPRoute compile to. The agent consumes only this.

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RoutingConfig {}

export function emptyRouting(): RoutingConfig {
  return {};
}
