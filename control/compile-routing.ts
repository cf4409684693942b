// VirtualService, DestinationRule and HTTPRoute (GAMMA) → RoutingConfig.
import { emptyRouting, type RoutingConfig } from './api/snapshot-routing.js';
import type { CompileContext } from './compile-context.js';
import type { Resource } from './resources.js';

export function compileRouting(_resources: readonly Resource[], _ctx: CompileContext): RoutingConfig {
  return emptyRouting();
}
