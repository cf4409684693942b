// Equivalent survivors of agent/policy/authorization-match.ts (the module "authorization" of mutate.ts): each
// with the reason it behaves exactly as the original. Spread into EQUIVALENT (equivalent-mutants.ts).
// Every other survivor of the 2026-12-06 run is killed by test/unit/authorization-match.test.ts (each planted by hand).
import type { Equivalent } from './equivalent-mutants.js';

const MATCH = 'agent/policy/authorization-match.ts';

export const AUTHZ_MATCH_EQUIVALENT: Equivalent[] = [
  {
    file: MATCH,
    mutator: 'EqualityOperator',
    original: 'v.length > 1',
    replacement: 'v.length >= 1',
    line: 46,
    reason: 'the join of one value is that value, which the loop just above has already compared: the extra call can only answer false again',
  },
  {
    file: MATCH,
    mutator: 'ArrowFunction',
    original: '() => false',
    replacement: '() => undefined',
    reason: 'the predicate is only read as a condition (`if (f(v))`), where undefined is false',
  },
  {
    file: MATCH,
    mutator: 'ConditionalExpression',
    original: 'isIPv6(ip)',
    replacement: 'true',
    reason: "a value that is no address then reaches BlockList.check, which answers false for an address it cannot parse (Node 20) — as the fall-through `return false`",
  },
  {
    file: MATCH,
    mutator: 'ConditionalExpression',
    original: 'v4 !== ip',
    replacement: 'false',
    reason: "Node's BlockList itself matches an IPv4-mapped IPv6 address against IPv4 rules (and an IPv4 address against ::ffff:0:0/96 rules), so checking the mapped form as ipv6 answers as checking its IPv4 form",
  },
  {
    file: MATCH,
    mutator: 'StringLiteral',
    original: "'/'",
    replacement: '""',
    line: 142,
    reason: "an absolute-form target with nothing after the authority then becomes '', which the missing-leading-slash rule two lines on turns into '/' (path and target alike)",
  },
  {
    file: MATCH,
    mutator: 'ConditionalExpression',
    original: 'out.length > 0',
    replacement: 'true',
    reason: "pop() on an empty array does nothing: '..' above the root stays at the root either way",
  },
  {
    file: MATCH,
    mutator: 'EqualityOperator',
    original: 'out.length > 0',
    replacement: 'out.length >= 0',
    reason: "pop() on an empty array does nothing: '..' above the root stays at the root either way",
  },
];
