// How AuthorizationPolicy values are compared with request attributes, compiled once per
// snapshot into plain predicates (the per-request path only calls them), and how a
// request path is normalised before it is compared (and forwarded).
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Attribute, ValueMatch } from '../../control/api/snapshot-security.js';
import { unmapIpv4 } from '../../common/ip.js';

/** An attribute's value: absent, one string, or several (headers seen more than once, audiences). */
export type AttributeValue = string | readonly string[] | undefined;

export type ValuePredicate = (v: string | readonly string[]) => boolean;

/** Attributes Istio compares case-insensitively: "The match is case-insensitive" (hosts). */
const CASE_INSENSITIVE: ReadonlySet<Attribute> = new Set<Attribute>(['request.host']);

// RFC 3986 pchar, as Envoy's URI-template operators match them
const PCHAR = "a-zA-Z0-9\\-._~%!$&'()+,;:@=";

/**
 * One predicate for a list of values (OR): true if any value matches. A multi-valued
 * attribute matches if one of its values does (for headers, also the values joined
 * with "," as Envoy presents a repeated header).
 */
export function compileValues(list: readonly ValueMatch[], attribute: Attribute): ValuePredicate | undefined {
  if (list.length === 0) return undefined;
  const fold = CASE_INSENSITIVE.has(attribute);
  const singles: ((v: string) => boolean)[] = [];
  let cidrs: BlockList | undefined;
  for (const m of list) {
    if (m.kind === 'cidr') {
      cidrs ??= new BlockList();
      addCidr(cidrs, m.value);
    } else if (m.kind === 'presence' && attribute === 'request.headers') {
      // Envoy's present_match: the header is there, whatever its value (even empty)
      singles.push(() => true);
    } else singles.push(compileString(m, fold));
  }
  const one = (v: string): boolean => {
    if (cidrs && matchesCidr(cidrs, v)) return true;
    for (const f of singles) if (f(v)) return true;
    return false;
  };
  return (v) => {
    if (typeof v === 'string') return one(v);
    for (const x of v) if (one(x)) return true;
    return v.length > 1 && one(v.join(','));
  };
}

function compileString(m: ValueMatch, fold: boolean): (v: string) => boolean {
  const want = fold ? m.value.toLowerCase() : m.value;
  const norm = fold ? (v: string) => v.toLowerCase() : (v: string) => v;
  switch (m.kind) {
    case 'exact':
      return (v) => norm(v) === want;
    case 'prefix':
      return (v) => norm(v).startsWith(want);
    case 'suffix':
      return (v) => norm(v).endsWith(want);
    case 'presence':
      // "Presence match: * will match when value is not empty."
      return (v) => v !== '';
    case 'template': {
      const re = templateRegExp(m.value);
      return (v) => re.test(v);
    }
    default:
      return () => false;
  }
}

/**
 * Envoy URI template: `{*}` is one path segment (`[pchar]+`), `{**}` any run of pchars and
 * slashes (`[pchar/]*`); the rest is literal; the whole path must match.
 */
export function templateRegExp(template: string): RegExp {
  let re = '';
  for (const part of template.split(/(\{\*\*\}|\{\*\})/)) {
    if (part === '{*}') re += `[${PCHAR}]+`;
    else if (part === '{**}') re += `[${PCHAR}/]*`;
    else re += part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function addCidr(list: BlockList, value: string): void {
  const slash = value.lastIndexOf('/');
  const addr = value.slice(0, slash);
  const len = Number(value.slice(slash + 1));
  if (isIPv4(addr)) list.addSubnet(addr, len, 'ipv4');
  else if (isIPv6(addr)) list.addSubnet(addr, len, 'ipv6');
}

function matchesCidr(list: BlockList, ip: string): boolean {
  if (isIPv4(ip)) return list.check(ip, 'ipv4');
  if (isIPv6(ip)) {
    const v4 = unmapIpv4(ip);
    return v4 !== ip ? list.check(v4, 'ipv4') : list.check(ip, 'ipv6');
  }
  return false;
}

/** `cluster.local/ns/foo/sa/bar` → its parts; undefined for anything else. */
export function principalParts(principal: string): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  const m = /^([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(principal);
  return m ? { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! } : undefined;
}

/** A SPIFFE ID or a principal → the principal form policies are written in (no `spiffe://`). */
export function toPrincipal(id: string): string {
  return id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : id;
}

// Unreserved characters Istio's BASE normalisation decodes: "%2d %2e %30-%39 %41-%5a %5f
// %61-%7a %7e" (case-insensitive); %2f and %5c stay encoded.
function decodesUnreserved(hex: string): boolean {
  const c = parseInt(hex, 16);
  return (
    c === 0x2d || c === 0x2e || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || (c >= 0x61 && c <= 0x7a) || c === 0x7e
  );
}

export interface NormalizedPath {
  /** what policies compare: the normalised path without the query */
  path: string;
  /** what is forwarded: the normalised path with the original query */
  target: string;
}

/**
 * Istio's default path normalisation (BASE), applied both to policy evaluation and to the
 * request sent on: "The normalized request will be used for the authorization policy
 * evaluation and the request finally sent to the backend server." Percent-encoded
 * unreserved characters are decoded once, backslashes become slashes, `.` and `..`
 * segments are resolved (RFC 3986 §5.2.4); the query is not compared. `%00` is refused
 * (undefined: answer 400). Merging slashes is not part of BASE.
 */
export function normalizePath(requestTarget: string): NormalizedPath | undefined {
  let target = requestTarget;
  // absolute-form (a proxy-style request line): keep the path
  const abs = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  if (abs) target = target.slice(abs[0].length) || '/';
  if (target === '*') return { path: '*', target: '*' };
  const q = target.indexOf('?');
  let path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  if (/%00/.test(path)) return undefined;
  path = path.replace(/%([0-9a-fA-F]{2})/g, (all, hex: string) => (decodesUnreserved(hex) ? String.fromCharCode(parseInt(hex, 16)) : all));
  path = path.replace(/\\/g, '/');
  if (!path.startsWith('/')) path = `/${path}`;
  path = removeDotSegments(path);
  return { path, target: path + query };
}

function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/').slice(1);
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === '.') {
      if (last) out.push('');
    } else if (seg === '..') {
      if (out.length > 0) out.pop();
      if (last) out.push('');
    } else out.push(seg);
  });
  return `/${out.join('/')}`;
}
