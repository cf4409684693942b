// HTTP header names and values in routes, as Istio and Gateway API accept them.
import type { FieldPath } from '../model/source-document.js';
import { FieldProblem, describeValue } from './fields.js';

// RFC 7230 token characters: what Istio (validHeaderNameRegex) and Gateway API (HTTPHeaderName) accept.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$/;

/** A header name, lower-cased; `pseudo` also accepts HTTP/2 pseudo-headers (`:path`…). */
export function headerName(v: unknown, path: FieldPath, opts: { pseudo?: boolean } = {}): string {
  if (typeof v !== 'string' || v === '') throw new FieldProblem(path, `expected a header name, found ${describeValue(v)}`);
  if (opts.pseudo && /^:(method|scheme|authority|path|status)$/.test(v)) return v.toLowerCase();
  if (v.length > 256 || !HEADER_NAME.test(v))
    throw new FieldProblem(path, `${JSON.stringify(v)} is not a valid header name: letters, digits and !#$%&'*+-.^_\`|~ only (RFC 7230 token)`);
  return v.toLowerCase();
}

/** A header value: no control characters (Istio's ValidateHTTPHeaderValue). */
export function headerValue(v: unknown, path: FieldPath): string {
  if (typeof v !== 'string') throw new FieldProblem(path, `expected a string, found ${describeValue(v)}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(v)) throw new FieldProblem(path, 'a header value cannot contain control characters or line breaks');
  return v;
}
