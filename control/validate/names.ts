// Names and addresses as Kubernetes and Istio accept them: DNS labels and subdomains
// (resource, container and port names), IANA service names (named ports), host names with an
// Istio wildcard, and IP addresses.
import { isIP, isIPv4 } from 'node:net';
import type { FieldPath } from '../model/source-document.js';
import { FieldProblem, optString } from './fields.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** RFC 1123 label: Namespace names, container names, Service port names. */
export function dns1123Label(v: string, path: FieldPath): string {
  if (v.length > 63 || !DNS1123_LABEL.test(v))
    throw new FieldProblem(path, `${JSON.stringify(v)} is not a valid name: expected at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit`);
  return v;
}

/** RFC 1035 label: Service names (they become DNS names). */
export function dns1035Label(v: string, path: FieldPath): string {
  if (v.length > 63 || !DNS1035_LABEL.test(v))
    throw new FieldProblem(path, `${JSON.stringify(v)} is not a valid Service name: expected at most 63 lowercase letters, digits or '-', starting with a letter and ending with a letter or digit`);
  return v;
}

/** RFC 1123 subdomain: Pod, Node, ServiceAccount, Deployment names. */
export function dns1123Subdomain(v: string, path: FieldPath): string {
  if (v.length > 253 || !v.split('.').every((l) => l.length <= 63 && DNS1123_LABEL.test(l)))
    throw new FieldProblem(path, `${JSON.stringify(v)} is not a valid name: expected lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit`);
  return v;
}

/** An IANA service name (RFC 6335), as used for named ports. */
export function ianaServiceName(v: string, path: FieldPath): string {
  const valid = v.length >= 1 && v.length <= 15 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(v) && /[a-z]/.test(v) && !v.includes('--');
  if (!valid)
    throw new FieldProblem(path, `${JSON.stringify(v)} is not a valid port name: expected at most 15 lowercase letters, digits or '-', with at least one letter and no leading, trailing or double '-'`);
  return v;
}

/** Istio's ValidateWildcardDomain: DNS-1123 labels, a wildcard only as the whole first label. */
export function wildcardDomain(host: string, path: FieldPath): string {
  if (host.length === 0 || host.length > 255) throw new FieldProblem(path, `domain name ${JSON.stringify(host)} must be 1-255 characters`);
  const [first, ...rest] = host.split('.');
  const ok = (l: string) => l.length <= 63 && DNS1123_LABEL.test(l);
  if (!(first === '*' || (first!.startsWith('*') && ok(first!.slice(1))) || ok(first!)))
    throw new FieldProblem(path, `domain name ${JSON.stringify(host)} invalid (label ${JSON.stringify(first)} invalid): lowercase letters, digits and '-', a wildcard only as the first label`);
  rest.forEach((l, i) => {
    if (i === rest.length - 1 && l === '') return; // `istio.io.`
    if (!ok(l)) throw new FieldProblem(path, `domain name ${JSON.stringify(host)} invalid (label ${JSON.stringify(l)} invalid)`);
  });
  return host;
}

/** An IP address (either family); absent or "" → "". */
export function optIp(v: unknown, path: FieldPath): string {
  const s = optString(v, path);
  if (s === undefined || s === '') return '';
  if (!isIP(s)) throw new FieldProblem(path, `expected an IP address, found ${JSON.stringify(s)}`);
  return s;
}

export function ipv4(v: string, path: FieldPath, extra = ''): string {
  if (!isIPv4(v)) throw new FieldProblem(path, `expected an IPv4 address${extra}, found ${JSON.stringify(v)}`);
  return v;
}
