// The consistent-hash input of a request (Istio's consistentHash: httpHeaderName, httpCookie,
// useSourceIp, httpQueryParameterName), hashed for the cluster's ring. A request without the
// input gets no hash, and the balancer then picks at random, as Envoy does when the hash
// policy yields no hash.
import type { ConsistentHash } from '../../control/api/snapshot-routing.js';
import { hashString } from '../cluster/load-balancer/consistent-hash.js';
import { queryParam } from './route-match.js';

/** What the hash reads of a request, and where it leaves a cookie to set on the response. */
export interface HashedRequest {
  header(name: string): string | undefined;
  readonly query: string;
  readonly conn: { readonly sourceAddress: string };
  /** a consistent-hash cookie to set on the response (httpCookie with a ttl, cookie absent) */
  setCookie: string | undefined;
}

/** The 32-bit hash of the request's input; undefined: no input (a random endpoint). */
export function requestHash(h: ConsistentHash, req: HashedRequest, random: () => number): number | undefined {
  let v: string | undefined;
  switch (h.kind) {
    case 'header':
      v = req.header(h.name.toLowerCase());
      break;
    case 'sourceIp':
      v = req.conn.sourceAddress;
      break;
    case 'queryParam':
      v = queryParam(req.query, h.name);
      break;
    case 'cookie': {
      v = cookieValue(req.header('cookie'), h.name);
      if (v === undefined && h.cookieTtlMs > 0) {
        // Envoy: "If the cookie is not present and a TTL is set, Envoy generates one"
        v = Math.floor(random() * 2 ** 52).toString(16);
        const path = h.cookiePath ? `; Path=${h.cookiePath}` : '';
        req.setCookie = `${h.name}=${v}; Max-Age=${Math.ceil(h.cookieTtlMs / 1000)}${path}; HttpOnly`;
      }
      break;
    }
  }
  return v === undefined ? undefined : hashString(v);
}

/** The value of cookie `name` in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
