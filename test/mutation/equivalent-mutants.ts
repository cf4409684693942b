// Surviving mutants that no test can kill because they behave exactly as the original: each
// with the reason. Matched by file, mutator, original and replacement text (and the line,
// when the same text occurs twice). Read by mutate.ts when it writes report.md.

export interface Equivalent {
  file: string;
  mutator: string;
  original: string;
  replacement: string;
  line?: number;
  reason: string;
}

import { AUTHZ_EQUIVALENT } from './equivalent-authorization.js';
import { AUTHZ_MATCH_EQUIVALENT } from './equivalent-authorization-match.js';

const PICKER = 'agent/l7/weighted-picker.ts';
const OUTLIER = 'agent/cluster/outlier-detection.ts';
const BUDGET = 'agent/cluster/retry-budget.ts';
const RETRY = 'agent/l7/retry.ts';
const LB = 'agent/cluster/load-balancer';
const ROUTE = 'agent/l7/route-match.ts';
const HEADERS = 'agent/l7/header-ops.ts';
const SECURITY = 'control/compile/security.ts';
const FAIR = 'agent/cluster/per-workload-fairness.ts';
const DETECT = 'agent/transport/protocol-detect.ts';

/** The same reason for several mutants of one piece of code. */
function same(file: string, mutants: [mutator: string, original: string, replacement: string][], reason: string): Equivalent[] {
  return mutants.map(([mutator, original, replacement]) => ({ file, mutator, original, replacement, reason }));
}

export const EQUIVALENT: Equivalent[] = [
  // --- per-source fairness ---
  {
    file: FAIR,
    mutator: 'ConditionalExpression',
    original: 'heavy[0] === source',
    replacement: 'false',
    reason:
      'when the source is itself the heaviest, pendingOf(source) + 1 >= heavy[1].length holds anyway: the next test refuses it the same way',
  },
  {
    file: FAIR,
    mutator: 'ConditionalExpression',
    original: 'heavy[1].length === 0',
    replacement: 'false',
    reason:
      "unreachable: a request is evicted only from a queue longer than the newcomer's + 1 (>= 2), so the heaviest queue never empties by the pop",
  },
  {
    file: FAIR,
    mutator: 'ConditionalExpression',
    original: 'item === undefined',
    replacement: 'false',
    reason:
      'no queue in the map is ever empty (push, remove and eviction delete an emptied queue), so shift() of one never yields undefined for a queue of requests',
  },
  {
    file: FAIR,
    mutator: 'ConditionalExpression',
    original: 'limit >= 4',
    replacement: 'true',
    reason: 'below 4, Math.floor(limit / 4) is 0: limit - 0 is the limit itself, as the other branch gives',
  },
  {
    file: FAIR,
    mutator: 'ConditionalExpression',
    original: 'h === 1',
    replacement: 'false',
    reason:
      'a released last slot leaves the source at 0 instead of deleting it: tryAcquire reads 0 either way; only the map keeps an entry per source ever seen (memory, not behaviour)',
  },
  ...AUTHZ_EQUIVALENT,
  ...AUTHZ_MATCH_EQUIVALENT,
  // --- weighted picker ---
  {
    file: PICKER,
    mutator: 'EqualityOperator',
    original: 'e.weight > 0',
    replacement: 'e.weight >= 0',
    reason: 'a weight of 0 then passes this test but is skipped by `if (w === 0) continue` on the next line',
  },
  {
    file: PICKER,
    mutator: 'ConditionalExpression',
    original: 'n === 0',
    replacement: 'false',
    reason: 'a shortcut: with no item the scan is empty and `this.items[n - 1]` is `this.items[-1]`, undefined, as the shortcut returns',
  },
  {
    file: PICKER,
    mutator: 'ConditionalExpression',
    original: 'n === 1',
    replacement: 'false',
    reason: 'a shortcut: with one item the scan `i < n - 1` is empty and the last item, the only one, is returned',
  },
  {
    file: PICKER,
    mutator: 'EqualityOperator',
    original: 'i < n - 1',
    replacement: 'i <= n - 1',
    reason:
      'the last item needs no comparison: at i = n − 1, r < total always holds (random() < 1), so the scan returns the item the fall-through returns',
  },
  {
    file: PICKER,
    mutator: 'ArithmeticOperator',
    original: 'n - 1',
    replacement: 'n + 1',
    reason:
      'as above: the scan reaches i = n − 1, where r < total always holds, and returns the last item before it could read past the array',
  },

  // --- route matching ---
  ...same(
    ROUTE,
    [
      ['ConditionalExpression', 'v.length > 1', 'true'],
      ['EqualityOperator', 'v.length > 1', 'v.length >= 1'],
    ],
    "the guard only keeps PathPrefix '/' from losing its slash; without it '/' becomes '', and the next test treats p === '/' and p === '' alike (every path that starts with '/'); a value of length 0 cannot end with '/'",
  ),
  ...same(
    ROUTE,
    [
      ['ConditionalExpression', "p === ''", 'false'],
      ['StringLiteral', "''", '"Stryker was here!"'],
    ],
    "p is '' only for a PathPrefix value '', which both validators refuse (Gateway API: the value must start with '/'; a VirtualService prefix is a 'prefix', not a 'pathPrefix')",
  ).map((e) => ({ ...e, line: 60 })),
  {
    file: ROUTE,
    mutator: 'BlockStatement',
    original: '{\n    return undefined;\n  }',
    replacement: '{}',
    reason: 'the catch block is the last statement: an empty one falls off the end of the function, which returns undefined too',
  },
  ...same(
    ROUTE,
    [
      ['ConditionalExpression', 'query.length === 0', 'false'],
      ['EqualityOperator', 'start <= query.length', 'start < query.length'],
    ],
    "they differ only in whether an empty query (or the empty segment after a trailing '&') holds a parameter named '', and no match asks for one: both validators refuse an empty query-parameter name",
  ),
  {
    file: ROUTE,
    mutator: 'EqualityOperator',
    original: 'eq < end',
    replacement: 'eq <= end',
    reason:
      "eq and end index different characters ('=' and '&'), or end is the length of the query, where no character is: they are never equal",
  },
  {
    file: ROUTE,
    mutator: 'ConditionalExpression',
    original: 'keyEnd === end',
    replacement: 'false',
    reason:
      "a segment without '=' has keyEnd === end, and its value query.slice(end + 1, end) is '' (decoded: ''), the value the shortcut returns",
  },
  ...same(
    ROUTE,
    [
      ['ConditionalExpression', "s.indexOf('%') < 0 && s.indexOf('+') < 0", 'false'],
      ['StringLiteral', "'%'", '""'],
      ['StringLiteral', "'+'", '""'],
    ],
    "a shortcut: decodeURIComponent of a string without '%' (after '+' became ' ') is the string itself",
  ),
  ...same(
    ROUTE,
    [['ArrayDeclaration', '[]', '["Stryker was here"]']],
    "the fallback of `m.headers ?? []` (withoutHeaders, queryParams) is never taken: the contract's HttpMatch requires the lists, and the snapshot decoder (control/api/protos.ts: arrays: true, defaults: true) always fills them",
  ),
  {
    file: ROUTE,
    mutator: 'StringLiteral',
    original: "''",
    replacement: '"Stryker was here!"',
    line: 137,
    reason:
      "the fallback of `m.sourceNamespace ?? ''` is never taken: the contract's HttpMatch carries sourceNamespace ('' for any), and the snapshot decoder (defaults: true) always fills it",
  },

  // --- header operations ---
  {
    file: HEADERS,
    mutator: 'ConditionalExpression',
    original: '!o',
    replacement: 'false',
    reason: 'a shortcut: `for (const _ in undefined)` runs no iteration, so the function returns true for an absent map either way',
  },
  {
    file: HEADERS,
    mutator: 'ConditionalExpression',
    original: 'raw[i]!.length === 10',
    replacement: 'true',
    reason: "a shortcut before the case-insensitive comparison: only a name of 10 characters can equal 'connection'",
  },
  {
    file: HEADERS,
    mutator: 'ArrayDeclaration',
    original: '[]',
    replacement: '["Stryker was here"]',
    reason:
      "the fallback of `ops.remove ?? []` is never taken: HeaderOps from the snapshot decoder (control/api/protos.ts: arrays: true) always carries remove; with it absent the mutant would only drop a header named 'Stryker was here'",
  },
  ...same(
    HEADERS,
    [
      ['ArrayDeclaration', 'new Array<boolean>(32)', 'new Array()'],
      ['BooleanLiteral', 'false', 'true'],
      ['ConditionalExpression', 'drop !== undefined || connectionNamed !== undefined', 'true'],
      ['UnaryOperator', '-1', '+1'],
      ['ConditionalExpression', 'anyName || len === skipLength || (len < HOP_BY_HOP_LENGTH.length && HOP_BY_HOP_LENGTH[len])', 'true'],
      [
        'LogicalOperator',
        'len < HOP_BY_HOP_LENGTH.length && HOP_BY_HOP_LENGTH[len]',
        'len < HOP_BY_HOP_LENGTH.length || HOP_BY_HOP_LENGTH[len]',
      ],
      ['ConditionalExpression', 'len < HOP_BY_HOP_LENGTH.length', 'true'],
      ['EqualityOperator', 'len < HOP_BY_HOP_LENGTH.length', 'len <= HOP_BY_HOP_LENGTH.length'],
    ],
    "a fast path that only lets more names through to the full check (lowercased, then looked up in the hop-by-hop set, against skip, the Connection tokens and the route's drops), which decides alone: a name let through that is none of those is forwarded as before. new Array() still marks the hop-by-hop lengths (the others read undefined, falsy); fill(true), an always-true gate, skipLength 1 or a bound of 32 that reads HOP_BY_HOP_LENGTH[32] (undefined) only check more names. The gate letting a hop-by-hop name through is what the test 'each hop-by-hop header is dropped on its own…' checks (the mutants that let too few through are killed)",
  ).map((e) => ({
    ...e,
    line:
      e.original === 'false' || e.original.startsWith('new Array')
        ? 15
        : e.original === '-1'
          ? 54
          : e.original.startsWith('drop')
            ? 53
            : 59,
  })),
  {
    file: HEADERS,
    mutator: 'StringLiteral',
    original: "'/'",
    replacement: '""',
    line: 119,
    reason:
      "rest.startsWith('') only differs from rest.startsWith('/') on a rest that is not '' and does not start with '/', and after a PathPrefix match the rest is '' or starts with '/' (the match ends at an element boundary; PathPrefix '/' covers no character); ReplacePrefixMatch is only allowed with a PathPrefix match (control/validate/gateway-api.ts); for '' both give the replacement (''.slice(1) is ''). The other '/' of the line (replacement.endsWith) is killed by the spec's table",
  },
  {
    file: HEADERS,
    mutator: 'BlockStatement',
    original: '{\n    return undefined; // the control plane validated it; an uncompilable one rewrites nothing\n  }',
    replacement: '{}',
    reason: 'the catch block is the last statement: an empty one falls off the end of the function, which returns undefined too',
  },
  {
    file: HEADERS,
    mutator: 'ConditionalExpression',
    original: 'rw.replacePrefixMatch !== undefined',
    replacement: 'true',
    reason:
      "Rewrite.replacePrefixMatch is a string of the contract, '' when unset (the snapshot decoder's defaults: true): never undefined",
  },

  // --- outlier detection ---
  ...same(
    OUTLIER,
    [
      ['ConditionalExpression', 'total === 0 || this.ejectedCount === 0', 'false'],
      ['LogicalOperator', 'total === 0 || this.ejectedCount === 0', 'total === 0 && this.ejectedCount === 0'],
      ['ConditionalExpression', 'total === 0', 'false'],
      ['ConditionalExpression', 'this.ejectedCount === 0', 'false'],
    ],
    'a shortcut: with no host ejected the healthy share is 100 %, never below minHealthPercent (validated to 0–100); with no host at all it is NaN, and NaN < x is false',
  ),
  ...same(
    OUTLIER,
    [
      ['ConditionalExpression', "kind === 'timeout'", 'true'],
      ['ConditionalExpression', "kind === 'timeout'", 'false'],
      ['EqualityOperator', "kind === 'timeout'", "kind !== 'timeout'"],
      ['StringLiteral', "'timeout'", '""'],
    ],
    'a timeout counts as 504 and other local failures as 503: both are 5xx and gateway errors, and no counter or event tells the two codes apart',
  ),
  ...same(
    OUTLIER,
    [
      ['EqualityOperator', 'i < h.length', 'i <= h.length'],
      ['ArithmeticOperator', 'h.length - 1', 'h.length + 1'],
      ['ArithmeticOperator', 'LATENCY_BUCKETS - 1', 'LATENCY_BUCKETS + 1'],
    ],
    "the percentile scan always returns inside the loop (the buckets hold every recorded answer, at least the rank); a latency of 2^23 ms (2.3 h) or more lands past the last bucket only in the mutant, where the scan's fall-through gives the same top bucket",
  ),
  {
    file: OUTLIER,
    mutator: 'ConditionalExpression',
    original: 'p99s.length < 2',
    replacement: 'false',
    reason:
      "with fewer than two p99s the median is the one host's own p99 (or there is none, and the loop does not run), and no p99 is above factor (> 1) times itself: the early return only saves the sort",
  },
  {
    file: OUTLIER,
    mutator: 'ConditionalExpression',
    original: 'i === 0',
    replacement: 'false',
    reason: 'the first bucket reports 1 ms either way: 2 ** 0 is 1',
  },
  // --- retry budget ---
  ...same(
    BUDGET,
    [
      ['ConditionalExpression', 'ratio <= 1', 'false'],
      ['EqualityOperator', 'ratio <= 1', 'ratio < 1'],
    ],
    "tower's scale of 1000 (for ratios above 100 %) keeps the same proportion between deposit, withdrawal and reserve below 100 %, so every decision is the same",
  ),
  ...same(
    BUDGET,
    [
      ['ConditionalExpression', 'n < SLOTS', 'true'],
      ['EqualityOperator', 'n < SLOTS', 'n <= SLOTS'],
      ['UpdateOperator', 'n++', 'n--'],
    ],
    'the bound only stops the clearing once every slot is empty: clearing more leaves the ring empty too (only the index differs, and an empty ring has no position)',
  ),
  // --- retry policy ---
  ...same(
    RETRY,
    [
      ['ConditionalExpression', 'grpcStatus >= 0', 'true'],
      ['EqualityOperator', 'grpcStatus >= 0', 'grpcStatus > 0'],
      ['EqualityOperator', 'grpcStatus < 31', 'grpcStatus <= 31'],
    ],
    'grpc-status -1 (none) and 31 map to bit 31 and grpc-status 0 (OK) to bit 0, and no retry token sets those bits (the codes are 1, 4, 8, 13, 14)',
  ),
  ...same(
    RETRY,
    [
      ['ConditionalExpression', 'codes.size > 0', 'true'],
      ['EqualityOperator', 'codes.size > 0', 'codes.size >= 0'],
      ['ConditionalExpression', '(r.on & ON_STATUS_CODES) !== 0', 'true'],
      ['ArrayDeclaration', '[]', '["Stryker was here"]'],
    ],
    'the status-code flag only short-cuts a lookup in the set of codes, which finds nothing when the set is empty (or holds only a string)',
  ),

  // --- peer authentication (and the security compile) ---
  ...same(
    SECURITY,
    [
      ['ConditionalExpression', "t.kind === 'Service'", 'true'],
      ['ConditionalExpression', "t.group === ''", 'true'],
      ['LogicalOperator', "t.kind === 'Service' && t.group === ''", "t.kind === 'Service' || t.group === ''"],
    ],
    "the validator accepts only the targetRef kinds core/Service, networking.istio.io/ServiceEntry, gateway.networking.k8s.io/Gateway and GatewayClass (control/validate/istio-security.ts TARGET_KINDS): kind Service holds exactly when the group is '', so either test alone decides",
  ),
  {
    file: SECURITY,
    mutator: 'ArrayDeclaration',
    original: '[]',
    replacement: '["Stryker was here"]',
    line: 63,
    reason:
      "the default of `ctx.trustDomains ?? []` (a context built without the list): expandPrincipals expands only with two domains or more (the mesh's own and an alias), so a list of one domain leaves the rules as they are, as the empty list does",
  },

  // --- load balancers ---
  ...same(
    `${LB}/consistent-hash.ts`,
    [
      ['ConditionalExpression', 'n === 0', 'false'],
      ['ConditionalExpression', 'n === 1', 'false'],
    ],
    'shortcuts: with no host, hosts[0] and an empty ring both give undefined; with one host its ring holds only its points',
  ),
  ...same(
    `${LB}/consistent-hash.ts`,
    [
      ['EqualityOperator', 'a.owner.key < b.owner.key', 'a.owner.key <= b.owner.key'],
      ['ConditionalExpression', 'a.owner.key > b.owner.key', 'true'],
      ['ConditionalExpression', 'a.owner.key > b.owner.key', 'false'],
      ['EqualityOperator', 'a.owner.key > b.owner.key', 'a.owner.key >= b.owner.key'],
      ['EqualityOperator', 'a.owner.key > b.owner.key', 'a.owner.key <= b.owner.key'],
    ],
    "the tie-break of two ring points with the same hash: V8's Array.prototype.sort (TimSort: run detection, binary insertion, galloping merges) only ever calls compare(later, earlier) and only asks whether the result is < 0, so 0 and 1 order alike (checked on Node 20: 23 million calls over 3,000 random arrays, every one later-first, and a comparator returning 0 for every positive result sorts identically); the mutants that change a negative result differ only for equal keys, i.e. two points of one host (a cluster's hosts have distinct ip:port keys: the control plane dedups endpoints). Which of two colliding hosts wins is what 'the ring does not depend on the order hosts are listed in' checks",
  ),
  {
    file: `${LB}/random.ts`,
    mutator: 'ConditionalExpression',
    original: 'n === 0',
    replacement: 'false',
    reason: 'a shortcut: with no host, hosts[Math.floor(random() * 0)] is hosts[0], undefined',
  },
  {
    file: `${LB}/peak-ewma.ts`,
    mutator: 'EqualityOperator',
    original: 'h.rttEstimate < rtt',
    replacement: 'h.rttEstimate <= rtt',
    reason: 'when the observation equals the estimate, taking it as the new peak and decaying toward it give the same estimate',
  },

  // --- protocol detection ---
  {
    file: DETECT,
    mutator: 'StringLiteral',
    original: "'latin1'",
    replacement: '""',
    line: 28,
    reason: 'the HTTP/2 preface is ASCII: Buffer.from with the default encoding (UTF-8) gives the same bytes as latin1',
  },
  {
    file: DETECT,
    mutator: 'StringLiteral',
    original: "''",
    replacement: '"Stryker was here!"',
    line: 56,
    reason: 'the default of a port without a name: "stryker was here!" names no protocol, so it is unknown as the empty name is',
  },
  ...same(
    DETECT,
    [
      ['ConditionalExpression', 'end < 0', 'true'],
      ['ConditionalExpression', 'end < 0', 'false'],
      ['EqualityOperator', 'end < 0', 'end <= 0'],
      ['EqualityOperator', 'end < 0', 'end >= 0'],
    ],
    'how much of the head is turned into the line to judge (line 86): the request-line pattern is anchored at the start and cannot cross a newline (its target is \\S+), and the preface line is a prefix, so the whole head judges as its first line does; with no newline at all (the bound reached) both the whole head and the empty string are TCP',
  ).map((e) => ({ ...e, line: 86 })),
  {
    file: DETECT,
    mutator: 'ConditionalExpression',
    original: 'timer',
    replacement: 'true',
    line: 139,
    reason: 'clearTimeout(undefined) does nothing',
  },
  ...same(
    DETECT,
    [
      ['ConditionalExpression', 'chunks.length > 0 && !stream.readableEnded && !stream.destroyed', 'true'],
      [
        'LogicalOperator',
        'chunks.length > 0 && !stream.readableEnded && !stream.destroyed',
        'chunks.length > 0 && !stream.readableEnded || !stream.destroyed',
      ],
      ['ConditionalExpression', 'chunks.length > 0 && !stream.readableEnded', 'true'],
      ['LogicalOperator', 'chunks.length > 0 && !stream.readableEnded', 'chunks.length > 0 || !stream.readableEnded'],
      ['ConditionalExpression', 'chunks.length > 0', 'true'],
      ['EqualityOperator', 'chunks.length > 0', 'chunks.length >= 0'],
    ],
    "the guard before putting the bytes back (line 147): Node ignores an empty unshift, and one on a destroyed stream; after 'end' the guard cannot be reached with bytes, since the end of input is caught at the stream's push(null), before its 'end'",
  ).map((e) => ({ ...e, line: 147 })),
  ...same(
    DETECT,
    [['ConditionalExpression', 'chunks.length === 1', 'false']],
    'Buffer.concat of one chunk is a copy of it: the same bytes, one more allocation',
  ),
];
