// What the router does to headers and paths: hop-by-hop headers are not forwarded; header
// set/add/remove (Istio `headers.request/response`, Gateway API RequestHeaderModifier and
// ResponseHeaderModifier); URI rewrites (Istio `rewrite.uri` — "If the original URI was
// matched based on prefix, the value provided in this field will replace the corresponding
// matched prefix" — Gateway API ReplaceFullPath / ReplacePrefixMatch, Envoy regex rewrite)
// and redirects. Headers of HTTP/1.1 requests stay in Node's raw [name, value, …] form, so a
// request is forwarded without building a header object.
import { RE2JS } from 're2js';
import type { HeaderOps, Redirect, Rewrite, StringMatch } from '../../control/api/snapshot-routing.js';

/** RFC 9110 §7.6.1 connection-specific fields, plus the HTTP/1 ones HTTP/2 forbids. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

/** HOP_BY_HOP_LENGTH[n]: some hop-by-hop name has n characters. */
const HOP_BY_HOP_LENGTH: boolean[] = new Array<boolean>(32).fill(false);
for (const n of HOP_BY_HOP) HOP_BY_HOP_LENGTH[n.length] = true;

export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName);
}

export function emptyOps(ops: HeaderOps | undefined): boolean {
  if (!ops) return true;
  return (ops.remove?.length ?? 0) === 0 && isEmpty(ops.set) && isEmpty(ops.add);
}

function isEmpty(o: Record<string, string> | undefined): boolean {
  if (!o) return true;
  for (const _ in o) return false;
  return true;
}

/**
 * Raw headers without the hop-by-hop ones (and those the Connection header names), with
 * `ops` applied in Envoy's order: remove, then set (replaces), then add (appends). `skip`
 * names (lowercase) are dropped too (e.g. host when the authority is rewritten).
 */
export function forwardRaw(raw: readonly string[], opsList: readonly (HeaderOps | undefined)[], skip?: string): string[] {
  let connectionNamed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) (connectionNamed ??= new Set()).add(t.trim().toLowerCase());
    }
  }
  let drop: Set<string> | undefined;
  for (const ops of opsList) {
    if (!ops) continue;
    for (const r of ops.remove ?? []) (drop ??= new Set()).add(r.toLowerCase());
    for (const k in ops.set ?? {}) (drop ??= new Set()).add(k.toLowerCase());
  }
  // per request: a name is lowercased only when it could be one to leave out (a hop-by-hop
  // name's length, `skip`'s, or any when the route or the Connection header names some)
  const anyName = drop !== undefined || connectionNamed !== undefined;
  const skipLength = skip === undefined ? -1 : skip.length;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const len = name.length;
    if (anyName || len === skipLength || (len < HOP_BY_HOP_LENGTH.length && HOP_BY_HOP_LENGTH[len])) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower) || lower === skip || connectionNamed?.has(lower) || drop?.has(lower)) continue;
    }
    out.push(name, raw[i + 1]!);
  }
  for (const ops of opsList) {
    if (!ops) continue;
    for (const k in ops.set ?? {}) out.push(k, ops.set[k]!);
    for (const k in ops.add ?? {}) out.push(k, ops.add[k]!);
  }
  return out;
}

/** `ops` applied to an HTTP/2 header object (lowercase names) in place. */
export function applyOps(h: Record<string, string | string[] | undefined>, ops: HeaderOps | undefined): void {
  if (!ops) return;
  for (const r of ops.remove ?? []) delete h[r.toLowerCase()];
  for (const k in ops.set ?? {}) h[k.toLowerCase()] = ops.set[k];
  for (const k in ops.add ?? {}) {
    const name = k.toLowerCase();
    const v = h[name];
    h[name] = v === undefined ? ops.add[k] : Array.isArray(v) ? [...v, ops.add[k]!] : [v, ops.add[k]!];
  }
}

/** Drops HTTP/2 pseudo-headers and connection-specific fields from a header object (a copy). */
export function forwardH2(h: Record<string, string | string[] | undefined>, keepPseudo: boolean): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const k in h) {
    if (k.charCodeAt(0) === 58 /* : */ && !keepPseudo) continue;
    if (HOP_BY_HOP.has(k) && !(k === 'te' && h[k] === 'trailers')) continue;
    out[k] = h[k];
  }
  return out;
}

/** The matched prefix's length in `path` for a prefix or pathPrefix match, else -1. */
function matchedPrefix(m: StringMatch | undefined, path: string): number {
  if (!m || (m.kind !== 'prefix' && m.kind !== 'pathPrefix')) return -1;
  let v = m.value;
  // a PathPrefix covers whole path elements and its trailing '/' is ignored, so '/' covers none:
  // its match has length 0 and the rest of the path keeps its leading '/' (with ReplacePrefixMatch
  // '/xyz', '/abc' becomes '/xyz/abc', not '/xyzabc'), as gateway-api#4660 proposes and Istio's
  // and Envoy Gateway's fixes (istio#54939, envoyproxy/gateway#5516) do; kept for the Gateway
  // API issue that settles it (gateway-api#3592)
  if (m.kind === 'pathPrefix' && v.endsWith('/')) v = v.slice(0, -1);
  const p = m.ignoreCase ? path.toLowerCase() : path;
  return p.startsWith(m.ignoreCase ? v.toLowerCase() : v) ? v.length : -1;
}

/**
 * Replaces a Gateway API path prefix, keeping element boundaries: /foo + /bar on /foo/x → /bar/x.
 * The rest after a PathPrefix match is '' or starts with '/' (the match ends at an element
 * boundary). The replacement is never '': the contract's '' means "no prefix replacement" and the
 * Gateway API validator turns an empty ReplacePrefixMatch into '/' (the spec's table gives both
 * the same result), so an emptied path cannot arise here.
 */
function replacePrefix(path: string, prefixLen: number, replacement: string): string {
  const rest = path.slice(prefixLen);
  return replacement.endsWith('/') && rest.startsWith('/') ? replacement + rest.slice(1) : replacement + rest;
}

/**
 * Istio's `regexRewrite` (Envoy's regex_rewrite), compiled once per snapshot: every match of
 * the RE2 pattern in the path replaced, with RE2 (linear time, as the matchers) and the
 * rewrite's `\1` group references already turned into re2js's `$1` (a literal `$` is `$$`).
 */
export interface CompiledUriRegex {
  re: RE2JS;
  replacement: string;
}

export function compileUriRegex(rx: { match: string; rewrite: string }): CompiledUriRegex | undefined {
  try {
    return { re: RE2JS.compile(rx.match), replacement: rx.rewrite.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1') };
  } catch {
    return undefined; // the control plane validated it; an uncompilable one rewrites nothing
  }
}

/** The new path (without query) after a rewrite; `uriMatch` is the matched block's uri condition. */
export function rewritePath(path: string, rw: Rewrite, uriMatch: StringMatch | undefined, uriRegex: CompiledUriRegex | undefined): string {
  if (rw.replaceFullPath) return rw.replaceFullPath;
  if (rw.replacePrefixMatch !== '' && rw.replacePrefixMatch !== undefined && uriMatch) {
    const n = matchedPrefix(uriMatch, path);
    if (n >= 0) return replacePrefix(path, n, rw.replacePrefixMatch);
  }
  if (uriRegex) return uriRegex.re.matcher(path).replaceAll(uriRegex.replacement);
  if (rw.uri) {
    const n = matchedPrefix(uriMatch, path);
    return n >= 0 ? rw.uri + path.slice(n) : rw.uri;
  }
  return path;
}

/** The Location of a redirect. */
export function redirectLocation(
  rd: Redirect,
  req: { scheme: string; authority: string; path: string; query: string },
  uriMatch: StringMatch | undefined,
): string {
  const scheme = rd.scheme || req.scheme;
  let authority = rd.authority || req.authority;
  if (rd.port) authority = `${authority.replace(/:\d+$/, '')}:${rd.port}`;
  else if (rd.scheme && rd.scheme !== req.scheme) authority = authority.replace(/:\d+$/, ''); // the new scheme's default port
  let path = req.path;
  if (rd.replacePrefixMatch && uriMatch) {
    const n = matchedPrefix(uriMatch, path);
    if (n >= 0) path = replacePrefix(path, n, rd.replacePrefixMatch);
  } else if (rd.uri) {
    // Istio: "the entire path will be replaced, irrespective of the request URI being matched
    // as an exact path or prefix"
    path = rd.uri;
  }
  return `${scheme}://${authority}${path}${req.query ? `?${req.query}` : ''}`;
}
