// PeerAuthentication and AuthorizationPolicy → SecurityConfig.
import { emptySecurity, type SecurityConfig } from './api/snapshot-security.js';
import type { CompileContext } from './compile-context.js';
import type { Resource } from './resources.js';

export function compileSecurity(_resources: readonly Resource[], _ctx: CompileContext): SecurityConfig {
  return emptySecurity();
}
