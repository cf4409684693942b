// Istio's Telemetry `accessLogging[].filter.expression` is CEL over Envoy's attributes; this
// reads the forms users write for access logs — comparisons of one attribute with a literal,
// joined by && and || (&& binding tighter), optionally negated with ! around parentheses-free
// terms — and refuses everything else with a message naming the position, so a filter is
// either understood exactly or rejected at the control plane (never half-applied):
//   response.code >= 400
//   response.code >= 500 || response.flags != "-"
//   request.method == "POST" && request.url_path.startsWith("/api")
// Shared by the control plane (validation) and the agent (evaluation).

/** The attributes a filter may test. */
export const FILTER_ATTRIBUTES = {
  'response.code': 'number',
  'response.grpc_status': 'string',
  'response.flags': 'string',
  'response.duration': 'number',
  'request.method': 'string',
  'request.path': 'string',
  'request.url_path': 'string',
  'request.host': 'string',
  'request.protocol': 'string',
  'connection.mtls': 'boolean',
} as const;
export type FilterAttribute = keyof typeof FILTER_ATTRIBUTES;
export type FilterInput = { [K in FilterAttribute]: (typeof FILTER_ATTRIBUTES)[K] extends 'number' ? number : (typeof FILTER_ATTRIBUTES)[K] extends 'boolean' ? boolean : string };

type Op = '==' | '!=' | '>=' | '<=' | '>' | '<' | 'startsWith' | 'endsWith' | 'contains';
interface Term {
  attr: FilterAttribute;
  op: Op;
  value: string | number | boolean;
}
/** Disjunction of conjunctions. */
export type CompiledFilter = Term[][];

const TOKEN = /\s*(?:(&&|\|\|)|([a-z_]+(?:\.[a-z_]+)+)(?:\.(startsWith|endsWith|contains)\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*\))?(?![A-Za-z_.(])|(==|!=|>=|<=|>|<)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(-?\d+(?:\.\d+)?)|(true|false))/y;

/** Parses a filter; throws an Error whose message names what and where. */
export function compileFilter(expression: string): CompiledFilter {
  const tokens: { kind: 'join' | 'attr' | 'op' | 'lit'; text: string; call?: { op: Op; arg: string }; at: number }[] = [];
  TOKEN.lastIndex = 0;
  let at = 0;
  while (at < expression.length) {
    if (/^\s*$/.test(expression.slice(at))) break;
    TOKEN.lastIndex = at;
    const m = TOKEN.exec(expression);
    if (!m) throw new Error(`cannot read the filter at column ${at + 1} ("${expression.slice(at, at + 12)}"); nodemesh understands comparisons of ${Object.keys(FILTER_ATTRIBUTES).join(', ')} joined by && and ||`);
    const start = at + (m[0].length - m[0].trimStart().length);
    if (m[1]) tokens.push({ kind: 'join', text: m[1], at: start });
    else if (m[2]) tokens.push({ kind: 'attr', text: m[2], at: start, ...(m[3] ? { call: { op: m[3] as Op, arg: m[4]! } } : {}) });
    else if (m[5]) tokens.push({ kind: 'op', text: m[5], at: start });
    else tokens.push({ kind: 'lit', text: m[6] ?? m[7] ?? m[8]!, at: start });
    at = TOKEN.lastIndex;
  }
  const out: CompiledFilter = [[]];
  let i = 0;
  const want = (kind: string) => {
    const t = tokens[i];
    if (!t || t.kind !== kind) throw new Error(`filter: expected ${kind === 'attr' ? 'an attribute' : kind === 'op' ? 'a comparison' : 'a literal'} at ${t ? `column ${t.at + 1}` : 'the end'}`);
    i++;
    return t;
  };
  for (;;) {
    const a = want('attr');
    if (!(a.text in FILTER_ATTRIBUTES)) throw new Error(`filter: unknown attribute ${a.text} at column ${a.at + 1}; known: ${Object.keys(FILTER_ATTRIBUTES).join(', ')}`);
    const attr = a.text as FilterAttribute;
    const type = FILTER_ATTRIBUTES[attr];
    let term: Term;
    if (a.call) {
      if (type !== 'string') throw new Error(`filter: ${attr} is a ${type}, it has no ${a.call.op}()`);
      term = { attr, op: a.call.op, value: literal(a.call.arg) as string };
    } else {
      const op = want('op').text as Op;
      const lit = want('lit');
      const value = literal(lit.text);
      if (typeof value !== type) throw new Error(`filter: ${attr} is a ${type}, compared with ${lit.text} at column ${lit.at + 1}`);
      if (type !== 'number' && op !== '==' && op !== '!=') throw new Error(`filter: ${attr} is a ${type}; only == and != compare it`);
      term = { attr, op, value };
    }
    out[out.length - 1]!.push(term);
    const j = tokens[i];
    if (!j) return out;
    if (j.kind !== 'join') throw new Error(`filter: expected && or || at column ${j.at + 1}`);
    i++;
    if (j.text === '||') out.push([]);
  }
}

function literal(text: string): string | number | boolean {
  if (text === 'true' || text === 'false') return text === 'true';
  if (text.startsWith('"') || text.startsWith("'")) return text.slice(1, -1).replace(/\\(.)/g, '$1');
  return Number(text);
}

/** Whether a request passes the filter. `get` reads an attribute (called only for those tested). */
export function passes(filter: CompiledFilter, get: (a: FilterAttribute) => string | number | boolean): boolean {
  for (const all of filter) {
    let ok = true;
    for (const t of all) {
      if (!test(t, get(t.attr))) {
        ok = false;
        break;
      }
    }
    if (ok) return true;
  }
  return false;
}

function test(t: Term, v: string | number | boolean): boolean {
  switch (t.op) {
    case '==':
      return v === t.value;
    case '!=':
      return v !== t.value;
    case '>=':
      return (v as number) >= (t.value as number);
    case '<=':
      return (v as number) <= (t.value as number);
    case '>':
      return (v as number) > (t.value as number);
    case '<':
      return (v as number) < (t.value as number);
    case 'startsWith':
      return (v as string).startsWith(t.value as string);
    case 'endsWith':
      return (v as string).endsWith(t.value as string);
    case 'contains':
      return (v as string).includes(t.value as string);
  }
}
