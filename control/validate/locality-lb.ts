// DestinationRule `trafficPolicy.loadBalancer.localityLbSetting`, as Istio validates it
// (pkg/config/validation: ValidateLocalityLbSetting, validateLocalities): distribute and
// failover exclude each other; a distribute rule's weights are 1-100 and sum to 100; a
// locality is "region[/zone[/subzone]]" with no empty part and "*" only as its very end;
// patterns of one list must not overlap; failover names two different regions, without "/"
// or "*"; failover with a topology label in failoverPriority is refused. Failover without
// outlier detection is accepted with Istio's warning: nothing can tell a locality failed.
import type { LocalityLb } from '../api/snapshot-routing.js';
import { formatFieldPath as fmt, type FieldPath } from '../model/source-document.js';
import { TOPOLOGY_LABELS } from '../api/locality.js';
import { FieldProblem, describeValue, isObj, knownFields, nonEmptyString, object, optArray, optBoolean, stringList } from './fields.js';

export function localityLbSetting(v: unknown, path: FieldPath, notes: string[]): LocalityLb {
  const o = object(v, path);
  knownFields(o, path, ['enabled', 'distribute', 'failover', 'failoverPriority']);
  const distribute = optArray(o.distribute, [...path, 'distribute']).map((d, i) => distributeRule(d, [...path, 'distribute', i]));
  const failover = optArray(o.failover, [...path, 'failover']).map((f, i) => failoverRule(f, [...path, 'failover', i]));
  const failoverPriority = stringList(o.failoverPriority, [...path, 'failoverPriority'], (item, at) => {
    if (item === '') throw new FieldProblem(at, 'expected a label key, found ""');
  });
  if (distribute.length > 0 && failover.length > 0)
    throw new FieldProblem(path, "can not simultaneously specify 'distribute' and 'failover'");
  if (failover.length > 0) {
    const topology = failoverPriority.find((l) => (TOPOLOGY_LABELS as readonly string[]).includes(l));
    if (topology) throw new FieldProblem([...path, 'failoverPriority'], `can not simultaneously set 'failover' and topology label '${topology}' in 'failoverPriority'`);
  }
  noOverlap(distribute.map((d) => d.from), [...path, 'distribute'], 'from');
  const others = failoverPriority.filter((l) => !(TOPOLOGY_LABELS as readonly string[]).includes(l));
  if (others.length > 0)
    notes.push(`${fmt([...path, 'failoverPriority'])}: ${others.join(', ')} ranked as not matching: the node proxy ranks endpoints for all the pods of its node at once, by the topology labels only`);
  return { enabled: optBoolean(o.enabled, [...path, 'enabled']) ?? true, distribute, failover, failoverPriority };
}

function distributeRule(v: unknown, path: FieldPath): LocalityLb['distribute'][number] {
  const o = object(v, path);
  knownFields(o, path, ['from', 'to']);
  const from = locality(o.from, [...path, 'from']);
  const toPath = [...path, 'to'];
  if (!isObj(o.to)) throw new FieldProblem(toPath, `expected a mapping of locality to weight, found ${describeValue(o.to)}`);
  const to: Record<string, number> = {};
  let total = 0;
  for (const [k, w] of Object.entries(o.to)) {
    locality(k, [...toPath, k]);
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 1 || w > 100)
      throw new FieldProblem([...toPath, k], `locality weight must be in range [1, 100], found ${describeValue(w)}`);
    to[k] = w;
    total += w;
  }
  if (total !== 100) throw new FieldProblem(toPath, `total locality weight ${total} != 100`);
  noOverlap(Object.keys(to), toPath, undefined);
  return { from, to };
}

function failoverRule(v: unknown, path: FieldPath): LocalityLb['failover'][number] {
  const o = object(v, path);
  knownFields(o, path, ['from', 'to']);
  const from = nonEmptyString(o.from, [...path, 'from']);
  const to = nonEmptyString(o.to, [...path, 'to']);
  for (const [k, r] of [['from', from], ['to', to]] as const) {
    if (r.includes('/')) throw new FieldProblem([...path, k], `locality lb failover only specify region, found ${describeValue(r)}`);
    if (r.includes('*')) throw new FieldProblem([...path, k], "locality lb failover region should not contain '*' wildcard");
  }
  if (from === to) throw new FieldProblem(path, `locality lb failover settings must specify different regions (both are ${describeValue(from)})`);
  return { from, to };
}

/** "region[/zone[/subzone]]", "*" allowed once, as the last character. */
function locality(v: unknown, path: FieldPath): string {
  const s = nonEmptyString(v, path);
  const stars = s.split('*').length - 1;
  if (stars > 1 || (stars === 1 && !s.endsWith('*')))
    throw new FieldProblem(path, `locality ${s} wildcard '*' number can not exceed 1 and must be in the end`);
  const parts = s.split('/');
  if (parts.length > 3 || parts.some((p) => p === '')) throw new FieldProblem(path, `locality ${s} must not contain empty region/zone/subzone info (expected region[/zone[/subzone]])`);
  return s;
}

/** Istio refuses patterns of one list that cover the same locality ("us/*" then "us/a"). */
function noOverlap(patterns: readonly string[], path: FieldPath, field: string | undefined): void {
  for (let i = 0; i < patterns.length; i++)
    for (let j = 0; j < i; j++) {
      const a = patterns[j]!;
      const b = patterns[i]!;
      if (a === '*' || b === '*' || covers(a, b) || covers(b, a)) {
        const at = field === undefined ? [...path, b] : [...path, i, field];
        throw new FieldProblem(at, `locality ${b} overlap with previous specified ones (${a})`);
      }
    }
}

/** Whether pattern `p` matches every locality that `q` does ("us" and "us/*" cover "us/a"). */
function covers(p: string, q: string): boolean {
  const pp = p.split('/');
  const qq = q.split('/');
  for (let k = 0; k < pp.length; k++) {
    if (pp[k] === '*') return true;
    if (k >= qq.length || qq[k] === '*' || pp[k] !== qq[k]) return false;
  }
  return true;
}
