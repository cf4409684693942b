// Equivalent survivors of agent/policy/authorization-match.ts (the module "authorization" of mutate.ts): each
// with the reason it behaves exactly as the original. Spread into EQUIVALENT (equivalent-mutants.ts).
import type { Equivalent } from './equivalent-mutants.js';

export const AUTHZ_MATCH_EQUIVALENT: Equivalent[] = [];
