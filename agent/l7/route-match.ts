// Request matching for the L7 router: Istio HTTPMatchRequest and Gateway API HTTPRouteMatch,
// both compiled by the control plane into `HttpMatch` (control/api/snapshot-routing.ts).
// Everything here is compiled once per snapshot (regexes, lowercase forms) so that matching a
// request allocates nothing beyond the lazily parsed query string.
//
// Istio: "The match conditions are evaluated in order ... the first rule that matches wins";
// "All conditions inside a single match block have AND semantics, while the list of match
// blocks have OR semantics."
import { RE2JS } from 're2js';
import type { HttpMatch, HttpRoute, NamedMatch, StringMatch } from '../../control/api/snapshot-routing.js';

/**
 * Longest input a regex is run on; longer values never match a regex. Matching runs on
 * re2js (RE2's automata, linear in the input, as Envoy's safe_regex), so this bounds the
 * cost per request rather than guarding against backtracking: JavaScript's own engine
 * backtracks, and an RE2-valid pattern such as `(a+)+b` would take exponential time on a
 * request-controlled 30-character value. Envoy caps header values at 60 KiB.
 */
export const REGEX_INPUT_MAX = 4096;

/** What the matchers need to know about a request; header lookups are by lowercase name. */
export interface RequestView {
  method: string;
  /** path without the query string */
  path: string;
  /** the raw query string without `?` ("" when none) */
  query: string;
  authority: string;
  scheme: string;
  header(name: string): string | undefined;
  /** Service port the request was sent to */
  port: number;
  sourceNamespace: string;
  sourceLabels: Record<string, string> | undefined;
}

export interface CompiledStringMatch {
  readonly kind: StringMatch['kind'];
  test(value: string | undefined): boolean;
}

export function compileStringMatch(m: StringMatch): CompiledStringMatch {
  const ic = m.ignoreCase;
  const v = ic ? m.value.toLowerCase() : m.value;
  switch (m.kind) {
    case 'present':
      return { kind: m.kind, test: (s) => s !== undefined };
    case 'exact':
      return { kind: m.kind, test: ic ? (s) => s !== undefined && s.toLowerCase() === v : (s) => s === v };
    case 'prefix':
      return { kind: m.kind, test: ic ? (s) => s !== undefined && s.toLowerCase().startsWith(v) : (s) => s !== undefined && s.startsWith(v) };
    case 'pathPrefix': {
      // Gateway API PathPrefix: "matching is done on a path element by element basis. A path
      // element refers to the list of labels in the path split by the `/` separator. When
      // specified, a trailing `/` is ignored." (/foo matches /foo, /foo/, /foo/bar; not /foobar)
      const p = v.length > 1 && v.endsWith('/') ? v.slice(0, -1) : v;
      const test = (raw: string | undefined) => {
        if (raw === undefined) return false;
        const s = ic ? raw.toLowerCase() : raw;
        if (p === '/' || p === '') return s.startsWith('/');
        if (!s.startsWith(p)) return false;
        return s.length === p.length || s.charCodeAt(p.length) === 47; /* '/' */
      };
      return { kind: m.kind, test };
    }
    case 'regex': {
      // RE2 "full match" semantics, as Envoy's safe_regex: the whole value must match
      const re = compileRe2Matcher(m.value, ic);
      if (!re) return { kind: m.kind, test: () => false };
      return { kind: m.kind, test: (s) => s !== undefined && s.length <= REGEX_INPUT_MAX && re.matches(s) };
    }
  }
}

/**
 * An RE2 pattern for full matches (`matches()` is RE2's FullMatch), compiled by re2js: RE2
 * syntax as written, linear-time matching. A pattern RE2 rejects never matches (the control
 * plane should have rejected it).
 */
export function compileRe2Matcher(pattern: string, ignoreCase: boolean): RE2JS | undefined {
  try {
    return RE2JS.compile(pattern, ignoreCase ? RE2JS.CASE_INSENSITIVE : 0);
  } catch {
    return undefined;
  }
}

interface CompiledNamed {
  name: string;
  match: CompiledStringMatch;
}

export interface CompiledMatch {
  test(req: RequestView): boolean;
  /** the uri matcher, kept for prefix rewrites ("replace the matched prefix") */
  readonly uri: StringMatch | undefined;
}

function compileNamed(list: NamedMatch[]): CompiledNamed[] {
  return list.map((n) => ({ name: n.name.toLowerCase(), match: compileStringMatch(n.match) }));
}

/** Value of one query parameter (first occurrence), decoded; undefined when absent. */
export function queryParam(query: string, name: string): string | undefined {
  if (query.length === 0) return undefined;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    const eq = query.indexOf('=', start);
    const keyEnd = eq >= 0 && eq < end ? eq : end;
    if (decode(query.slice(start, keyEnd)) === name) return keyEnd === end ? '' : decode(query.slice(keyEnd + 1, end));
    start = end + 1;
  }
  return undefined;
}

function decode(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

export function compileMatch(m: HttpMatch): CompiledMatch {
  const uri = m.uri ? compileStringMatch(m.uri) : undefined;
  const method = m.method ? compileStringMatch(m.method) : undefined;
  const authority = m.authority ? compileStringMatch(m.authority) : undefined;
  const scheme = m.scheme ? compileStringMatch(m.scheme) : undefined;
  const headers = compileNamed(m.headers ?? []);
  const without = compileNamed(m.withoutHeaders ?? []);
  const query = (m.queryParams ?? []).map((n) => ({ name: n.name, match: compileStringMatch(n.match) }));
  const labels = Object.entries(m.sourceLabels ?? {});
  const port = m.port ?? 0;
  const sourceNamespace = m.sourceNamespace ?? '';
  return {
    uri: m.uri,
    test(req) {
      if (port !== 0 && req.port !== port) return false;
      if (sourceNamespace !== '' && req.sourceNamespace !== sourceNamespace) return false;
      for (let i = 0; i < labels.length; i++) {
        const [k, v] = labels[i]!;
        if (req.sourceLabels?.[k] !== v) return false;
      }
      if (method && !method.test(req.method)) return false;
      if (uri && !uri.test(req.path)) return false;
      if (authority && !authority.test(req.authority)) return false;
      if (scheme && !scheme.test(req.scheme)) return false;
      for (let i = 0; i < headers.length; i++) {
        const h = headers[i]!;
        if (!h.match.test(req.header(h.name))) return false;
      }
      // Istio withoutHeaders: "the request must not match any of the listed headers"
      for (let i = 0; i < without.length; i++) {
        const h = without[i]!;
        if (h.match.test(req.header(h.name))) return false;
      }
      for (let i = 0; i < query.length; i++) {
        const q = query[i]!;
        if (!q.match.test(queryParam(req.query, q.name))) return false;
      }
      return true;
    },
  };
}

export interface CompiledRoute {
  route: HttpRoute;
  /** empty = match everything */
  blocks: CompiledMatch[];
}

export function compileRoute(route: HttpRoute): CompiledRoute {
  return { route, blocks: (route.match ?? []).map(compileMatch) };
}

/** The block of `r` that matches, `null` for a route without blocks, undefined for no match. */
export function matchRoute(r: CompiledRoute, req: RequestView): CompiledMatch | null | undefined {
  if (r.blocks.length === 0) return null;
  for (let i = 0; i < r.blocks.length; i++) if (r.blocks[i]!.test(req)) return r.blocks[i];
  return undefined;
}

/** First route that matches (Istio and, after the control plane's sort, Gateway API). */
export function firstMatch(routes: readonly CompiledRoute[], req: RequestView): { route: CompiledRoute; block: CompiledMatch | null } | undefined {
  for (let i = 0; i < routes.length; i++) {
    const block = matchRoute(routes[i]!, req);
    if (block !== undefined) return { route: routes[i]!, block };
  }
  return undefined;
}
