// Typed readers for the fields of a YAML document. Each reader either returns the value in
// the shape nodemesh uses or throws a FieldProblem naming the field path and what was
// expected; validate.ts turns the problem into a ConfigError with file, resource and line.
// YAML `null` (an empty value such as `labels:`) counts as absent, as in Kubernetes.
import { isIP, isIPv4 } from 'node:net';
import type { FieldPath } from '../source/files.js';

export class FieldProblem extends Error {
  readonly path: FieldPath;
  constructor(path: FieldPath, detail: string) {
    super(detail);
    this.name = 'FieldProblem';
    this.path = path;
  }
}

/** `['spec', 'ports', 0, 'port']` → `spec.ports[0].port`; odd keys are quoted: `labels["a/b"]`. */
export function formatFieldPath(path: FieldPath): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) s += s ? `.${seg}` : seg;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s;
}

/** What a wrong value is, for messages: `8080 (a number)`, `a list`. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `${JSON.stringify(v)} (a string)`;
  if (typeof v === 'boolean') return `${v} (a boolean; quote it if you mean the string: "${v}")`;
  return `${String(v)} (a ${typeof v})`;
}

function absent(v: unknown): v is null | undefined {
  return v === null || v === undefined;
}

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function object(v: unknown, path: FieldPath): Obj {
  if (absent(v)) throw new FieldProblem(path, 'is required: expected a mapping');
  if (!isObj(v)) throw new FieldProblem(path, `expected a mapping, found ${describeValue(v)}`);
  return v;
}

export function optObject(v: unknown, path: FieldPath): Obj | undefined {
  return absent(v) ? undefined : object(v, path);
}

export function optArray(v: unknown, path: FieldPath): unknown[] {
  if (absent(v)) return [];
  if (!Array.isArray(v)) throw new FieldProblem(path, `expected a list, found ${describeValue(v)}`);
  return v;
}

export function string(v: unknown, path: FieldPath): string {
  if (absent(v)) throw new FieldProblem(path, 'is required: expected a string');
  if (typeof v !== 'string') throw new FieldProblem(path, `expected a string, found ${describeValue(v)}`);
  return v;
}

export function optString(v: unknown, path: FieldPath): string | undefined {
  return absent(v) ? undefined : string(v, path);
}

export function optBoolean(v: unknown, path: FieldPath): boolean | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== 'boolean') throw new FieldProblem(path, `expected true or false, found ${describeValue(v)}`);
  return v;
}

export function integer(v: unknown, path: FieldPath, min: number, max: number): number {
  if (absent(v)) throw new FieldProblem(path, `is required: expected an integer ${min}-${max}`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new FieldProblem(path, `expected an integer ${min}-${max}, found ${describeValue(v)}`);
  return v;
}

export function oneOf<T extends string>(v: unknown, path: FieldPath, allowed: readonly T[], dflt: T): T;
export function oneOf<T extends string>(v: unknown, path: FieldPath, allowed: readonly T[]): T | undefined;
export function oneOf<T extends string>(v: unknown, path: FieldPath, allowed: readonly T[], dflt?: T): T | undefined {
  if (absent(v)) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))
    throw new FieldProblem(path, `expected one of ${allowed.join(', ')}, found ${describeValue(v)}`);
  return v as T;
}

/** A map of string to string (labels, annotations, selectors); absent → {}. */
export function stringMap(v: unknown, path: FieldPath): Record<string, string> {
  if (absent(v)) return {};
  if (!isObj(v)) throw new FieldProblem(path, `expected a mapping of strings, found ${describeValue(v)}`);
  const out: Record<string, string> = {};
  for (const k of Object.keys(v).sort()) {
    const val = v[k];
    if (typeof val !== 'string') throw new FieldProblem([...path, k], `expected a string, found ${describeValue(val)}`);
    out[k] = val;
  }
  return out;
}

export function stringList(v: unknown, path: FieldPath): string[] {
  return optArray(v, path).map((item, i) => {
    if (typeof item !== 'string') throw new FieldProblem([...path, i], `expected a string, found ${describeValue(item)}`);
    return item;
  });
}

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
export function isIanaServiceName(v: string): boolean {
  return v.length >= 1 && v.length <= 15 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(v) && /[a-z]/.test(v) && !v.includes('--');
}

export function ianaServiceName(v: string, path: FieldPath): string {
  if (!isIanaServiceName(v))
    throw new FieldProblem(path, `${JSON.stringify(v)} is not a valid port name: expected at most 15 lowercase letters, digits or '-', with at least one letter and no leading, trailing or double '-'`);
  return v;
}

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
