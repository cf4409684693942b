// Equivalent survivors of agent/policy/authorization.ts (the module "authorization" of mutate.ts): each
// with the reason it behaves exactly as the original. Spread into EQUIVALENT (equivalent-mutants.ts).
import type { Equivalent } from './equivalent-mutants.js';

export const AUTHZ_EQUIVALENT: Equivalent[] = [];
