// Regular expressions in routes. Istio and Envoy use RE2 ("Istio uses RE2 style regex-based
// match (https://github.com/google/re2/wiki/Syntax)"); the node proxy runs JavaScript. A
// pattern is accepted only if it means the same in both:
// - constructs RE2 rejects and JavaScript has (backreferences, lookaround, atomic groups,
//   possessive quantifiers) are errors, as Istio's validation would make them;
// - RE2 spellings JavaScript lacks are translated: `(?P<name>` → `(?<name>`, `\A` → `^`,
//   `\z` → `$`, `\Q…\E` → escaped literals, `\a` → `\x07`, `\x{41}` → `\x41`/`\u0041`,
//   POSIX classes `[[:digit:]]` → ranges, and a leading `(?i)` becomes the ignoreCase flag;
// - other RE2-only constructs (inline flags elsewhere, `\p{…}` Unicode classes, `\C`) are
//   errors that say so.
// Istio also bounds the length: "regex is too large, max length allowed is 1024".
import type { FieldPath } from '../model/source-document.js';
import { FieldProblem, describeValue } from './fields.js';

export interface CheckedRegex {
  /** the JavaScript source, unanchored (the matcher anchors it: RE2 full match) */
  source: string;
  ignoreCase: boolean;
}

const MAX_LENGTH = 1024;
/** RE2's kMaxRepeat */
const MAX_REPEAT = 1000;

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7f',
  blank: '\\t ',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

class RegexProblem extends Error {}

export function checkRegex(pattern: unknown, path: FieldPath): CheckedRegex {
  if (typeof pattern !== 'string') throw new FieldProblem(path, `expected a regular expression (a string), found ${describeValue(pattern)}`);
  if (pattern === '') throw new FieldProblem(path, 'regex string match should not be empty');
  if (pattern.length > MAX_LENGTH) throw new FieldProblem(path, `regex is too large, max length allowed is ${MAX_LENGTH}`);
  let checked: CheckedRegex;
  try {
    checked = translate(pattern);
  } catch (err) {
    if (!(err instanceof RegexProblem)) throw err;
    throw new FieldProblem(path, `${JSON.stringify(pattern)}: ${err.message}; Istio uses RE2 syntax (https://github.com/google/re2/wiki/Syntax)`);
  }
  try {
    new RegExp(checked.source, checked.ignoreCase ? 'i' : '');
  } catch (err) {
    const why = (err as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /, '');
    throw new FieldProblem(path, `${JSON.stringify(pattern)} is not a valid regular expression: ${why}`);
  }
  return checked;
}

function translate(p: string): CheckedRegex {
  let i = 0;
  let ignoreCase = false;
  if (p.startsWith('(?i)')) {
    ignoreCase = true;
    i = 4;
  }
  let out = '';
  // 0: after an atom; 1: after a quantifier; 2: after a lazy quantifier (`*?`)
  let state = 0;
  while (i < p.length) {
    const c = p[i]!;
    const rep = c === '{' ? repetition(p, i) : undefined;
    if (c === '*' || c === '+' || c === '?' || rep !== undefined) {
      if (state === 1 && c === '?') {
        out += '?'; // lazy: RE2 has it too
        i += 1;
        state = 2;
        continue;
      }
      if (state === 1 && c === '+') throw new RegexProblem(`possessive quantifier at offset ${i} is not supported (RE2 has none)`);
      if (state !== 0) throw new RegexProblem(`bad repetition operator at offset ${i}`);
      const end = rep ?? i + 1;
      out += p.slice(i, end);
      i = end;
      state = 1;
      continue;
    }
    let text: string;
    if (c === '\\') [text, i] = escape(p, i, false);
    else if (c === '(') [text, i] = group(p, i);
    else if (c === '[') [text, i] = charClass(p, i);
    else {
      text = c;
      i += 1;
    }
    out += text;
    state = 0;
  }
  return { source: out, ignoreCase };
}

/** `{n}`, `{n,}`, `{n,m}` at i: the index after it, or undefined when `{` is a literal. */
function repetition(p: string, i: number): number | undefined {
  const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i));
  if (!m) return undefined;
  const lo = Number(m[1]);
  const hi = m[3] ? Number(m[3]) : lo;
  if (lo > MAX_REPEAT || hi > MAX_REPEAT) throw new RegexProblem(`repetition count above ${MAX_REPEAT} in ${m[0]} (RE2's limit)`);
  if (m[3] && hi < lo) throw new RegexProblem(`bad repetition range ${m[0]}`);
  return i + m[0].length;
}

function group(p: string, i: number): [string, number] {
  if (p[i + 1] !== '?') return ['(', i + 1];
  const rest = p.slice(i + 2);
  if (rest.startsWith(':')) return ['(?:', i + 3];
  if (rest.startsWith('P<')) return ['(?<', i + 4];
  if (rest.startsWith('P=') || rest.startsWith('P>')) throw new RegexProblem(`named backreference at offset ${i} is not supported (RE2 has no backreferences)`);
  if (rest.startsWith('=') || rest.startsWith('!')) throw new RegexProblem(`lookahead (?${rest[0]} at offset ${i} is not supported (RE2 has no lookaround)`);
  if (rest.startsWith('<=') || rest.startsWith('<!')) throw new RegexProblem(`lookbehind (?${rest.slice(0, 2)} at offset ${i} is not supported (RE2 has no lookaround)`);
  if (/^<[A-Za-z_]/.test(rest)) return ['(?<', i + 3];
  if (rest.startsWith('>')) throw new RegexProblem(`atomic group (?> at offset ${i} is not supported (RE2 has none)`);
  if (/^[imsU-]/.test(rest))
    throw new RegexProblem(`inline flags at offset ${i} are supported only as a leading (?i) for the whole pattern`);
  throw new RegexProblem(`unknown group syntax (?${rest[0] ?? ''} at offset ${i}`);
}

/** One escape at i (p[i] === '\\'); `inClass` inside [...]. Returns its JS text and the next index. */
function escape(p: string, i: number, inClass: boolean): [string, number] {
  const d = p[i + 1];
  if (d === undefined) throw new RegexProblem('trailing backslash');
  if (/[0-9]/.test(d)) throw new RegexProblem(`\\${d} at offset ${i}: backreferences and octal escapes are not supported (RE2 has no backreferences; write a character as \\x41)`);
  if (/[^A-Za-z]/.test(d)) return [`\\${d}`, i + 2]; // escaped punctuation: same in both
  switch (d) {
    case 'd':
    case 'D':
    case 's':
    case 'S':
    case 'w':
    case 'W':
    case 'f':
    case 'n':
    case 'r':
    case 't':
    case 'v':
      return [`\\${d}`, i + 2];
    case 'b':
    case 'B':
      if (inClass) throw new RegexProblem(`\\${d} inside a character class at offset ${i} is not RE2`);
      return [`\\${d}`, i + 2];
    case 'a':
      return ['\\x07', i + 2];
    case 'A':
      if (inClass) break;
      return ['^', i + 2];
    case 'z':
      if (inClass) break;
      return ['$', i + 2];
    case 'x': {
      const braced = /^\{([0-9A-Fa-f]{1,6})\}/.exec(p.slice(i + 2));
      if (braced) {
        const code = parseInt(braced[1]!, 16);
        if (code > 0xffff) throw new RegexProblem(`\\x{${braced[1]}} at offset ${i}: code points above U+FFFF are not supported`);
        const hex = code.toString(16).padStart(code > 0xff ? 4 : 2, '0');
        return [code > 0xff ? `\\u${hex}` : `\\x${hex}`, i + 3 + braced[0].length - 1];
      }
      if (/^[0-9A-Fa-f]{2}/.test(p.slice(i + 2))) return [p.slice(i, i + 4), i + 4];
      throw new RegexProblem(`\\x at offset ${i} must be followed by two hex digits or {hex}`);
    }
    case 'Q': {
      if (inClass) break;
      const end = p.indexOf('\\E', i + 2);
      const literal = p.slice(i + 2, end < 0 ? p.length : end);
      return [literal.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&'), end < 0 ? p.length : end + 2];
    }
    case 'p':
    case 'P':
      throw new RegexProblem(`Unicode classes (\\${d}) at offset ${i} are not supported by nodemesh; use explicit ranges`);
    case 'C':
      throw new RegexProblem(`\\C (any byte) at offset ${i} is not supported`);
  }
  throw new RegexProblem(`\\${d} at offset ${i} is not a valid RE2 escape`);
}

function charClass(p: string, i: number): [string, number] {
  let out = '[';
  let j = i + 1;
  if (p[j] === '^') {
    out += '^';
    j++;
  }
  // a `]` right after `[` or `[^` is a literal in both dialects; spell it escaped for JS
  if (p[j] === ']') {
    out += '\\]';
    j++;
  }
  while (j < p.length && p[j] !== ']') {
    if (p[j] === '\\') {
      const [text, next] = escape(p, j, true);
      out += text;
      j = next;
    } else if (p.startsWith('[:', j)) {
      const m = /^\[:(\^?)([a-z]+):\]/.exec(p.slice(j));
      if (!m) {
        out += '\\[';
        j++;
        continue;
      }
      const ranges = POSIX[m[2]!];
      if (!ranges) throw new RegexProblem(`unknown POSIX class [:${m[2]}:] at offset ${j}`);
      if (m[1]) throw new RegexProblem(`negated POSIX class [:^${m[2]}:] at offset ${j} is not supported; negate the whole class instead`);
      out += ranges;
      j += m[0].length;
    } else if (p[j] === '[') {
      out += '\\[';
      j++;
    } else {
      out += p[j];
      j++;
    }
  }
  if (j >= p.length) throw new RegexProblem(`missing closing ] for the character class at offset ${i}`);
  return [out + ']', j + 1];
}
