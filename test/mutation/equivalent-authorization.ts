// Equivalent survivors of agent/policy/authorization.ts (the module "authorization" of mutate.ts): each
// with the reason it behaves exactly as the original. Spread into EQUIVALENT (equivalent-mutants.ts).
import type { Equivalent } from './equivalent-mutants.js';

const FILE = 'agent/policy/authorization.ts';

const HTTP_GETTER =
  'the getters of request.* attributes run only with a request: evalMatch returns U before calling them when there is none (every request.* attribute is in HTTP_ATTRIBUTES), so `a.http` is never undefined here';
const DEFERRED_LISTS =
  "in deferred mode decide's audited/dryRunMatched are never used: authorizeConnection replaces them, by a tcp evaluation when decided at accept or by [] when needsL7; the shortcut only saves evaluating them";
const DENY_PENDING =
  "the `pending` of a deny result is never read: needsL7 is `decision === 'allow' && pending` and authorizeRequest drops it";

export const AUTHZ_EQUIVALENT: Equivalent[] = [
  { file: FILE, mutator: 'StringLiteral', original: "'agent/authorization'", replacement: '""', line: 49, reason: "the logger's name, seen only in log lines" },
  {
    file: FILE,
    mutator: 'ObjectLiteral',
    original: '{ workload: w.workload, policy: ref }',
    replacement: '{}',
    line: 188,
    reason: "the fields of a log line; the fail-closed behaviour beside it is tested ('a snapshot naming an AuthorizationPolicy it does not carry fails closed')",
  },
  {
    file: FILE,
    mutator: 'StringLiteral',
    original: "'snapshot names an AuthorizationPolicy it does not carry; denying all traffic to the workload'",
    replacement: '""',
    line: 189,
    reason: 'the message of a log line only',
  },
  { file: FILE, mutator: 'OptionalChaining', original: 'a.http?.host', replacement: 'a.http.host', line: 249, reason: HTTP_GETTER },
  { file: FILE, mutator: 'OptionalChaining', original: 'a.http?.method', replacement: 'a.http.method', line: 251, reason: HTTP_GETTER },
  { file: FILE, mutator: 'OptionalChaining', original: 'a.http?.normalizedPath', replacement: 'a.http.normalizedPath', line: 253, reason: HTTP_GETTER },
  { file: FILE, mutator: 'OptionalChaining', original: 'a.http?.headers', replacement: 'a.http.headers', line: 256, reason: HTTP_GETTER },
  {
    file: FILE,
    mutator: 'StringLiteral',
    original: "''",
    replacement: '"Stryker was here!"',
    line: 255,
    reason:
      'the fallback of a request.headers test without a header name (the compiler always gives one): "" and "stryker was here!" (a space) are both no header name an HTTP parser accepts, so the lookup is undefined either way',
  },
  { file: FILE, mutator: 'ConditionalExpression', original: "mode === 'deferred'", replacement: 'false', line: 336, reason: DEFERRED_LISTS },
  { file: FILE, mutator: 'StringLiteral', original: "'deferred'", replacement: '""', line: 336, reason: DEFERRED_LISTS },
  { file: FILE, mutator: 'ArrayDeclaration', original: '[]', replacement: '["Stryker was here"]', line: 336, reason: DEFERRED_LISTS },
  { file: FILE, mutator: 'BooleanLiteral', original: 'false', replacement: 'true', line: 342, reason: DENY_PENDING },
  { file: FILE, mutator: 'BooleanLiteral', original: 'false', replacement: 'true', line: 356, reason: DENY_PENDING },
  {
    file: FILE,
    mutator: 'ConditionalExpression',
    original: "r.decision === 'allow'",
    replacement: 'true',
    line: 369,
    reason: 'every deny result carries `pending: false` (lines 342 and 356), so `true && r.pending` is the original',
  },
  {
    file: FILE,
    mutator: 'ConditionalExpression',
    original: "mode === 'deferred'",
    replacement: 'true',
    line: 371,
    reason: "in tcp mode (the only other; it never needs L7) the block re-evaluates decide(…, 'tcp'), which is what decide already returned: the same lists",
  },
  {
    file: FILE,
    mutator: 'StringLiteral',
    original: "'request'",
    replacement: '""',
    line: 384,
    reason: "decide and evalPolicy compare the mode only with 'tcp' and 'deferred': any other value is the request mode",
  },
];
