// Validation of networking.istio.io VirtualService and DestinationRule (v1alpha3, v1beta1,
// v1: one schema), as Istio's pkg/config/validation validates them; the result is already in
// the snapshot's vocabulary (model/routing.ts). What needs other resources (short names,
// which Services exist, which VirtualService wins a host) is the compiler's.
//
// nodemesh routes mesh traffic only: a VirtualService bound to gateways but not to `mesh` is
// accepted with a note and compiles to nothing.
import type { TcpRoute } from '../api/snapshot-routing.js';
import type { ValidatedBody } from '../model/resources.js';
import type { DestinationRuleSpec, VirtualServiceSpec } from '../model/routing.js';
import { formatFieldPath as fmt, type FieldPath } from '../model/source-document.js';
import { destination, virtualServiceHttpRoute } from './virtual-service-http.js';
import { LOAD_BALANCER_ANNOTATION, trafficPolicy } from './traffic-policy.js';
import {
  FieldProblem,
  creationTimestampIso,
  integer,
  knownFields,
  metadata,
  object,
  optArray,
  optInteger,
  string,
  stringMap,
  workloadSelectorLabels,
  type Obj,
} from './fields.js';
import { dns1123Label, dns1123Subdomain, wildcardDomain } from './names.js';

export function validateVirtualService(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const s = object(o.spec, ['spec']);
  knownFields(s, ['spec'], ['hosts', 'gateways', 'http', 'tls', 'tcp', 'exportTo']);
  const notes: string[] = [];
  const hosts = optArray(s.hosts, ['spec', 'hosts']).map((h, i) => string(h, ['spec', 'hosts', i]));
  const gateways = optArray(s.gateways, ['spec', 'gateways']).map((g, i) => string(g, ['spec', 'gateways', i]));
  // "If omitted, the rules are only applied to sidecars inside the mesh."
  const mesh = gateways.length === 0 || gateways.includes('mesh');
  hosts.forEach((h, i) => {
    if (h === '*' && mesh) throw new FieldProblem(['spec', 'hosts', i], 'wildcard host * is not allowed for virtual services bound to the mesh gateway');
    if (!isIp(h)) wildcardDomain(h, ['spec', 'hosts', i]);
    const dup = hosts.findIndex((other, j) => j < i && hostsOverlap(other, h));
    if (dup >= 0) throw new FieldProblem(['spec', 'hosts', i], `duplicate hosts in virtual service: ${hosts[dup]} & ${h}`);
  });
  const http = optArray(s.http, ['spec', 'http']);
  const tcp = optArray(s.tcp, ['spec', 'tcp']);
  const tls = optArray(s.tls, ['spec', 'tls']);
  if (http.length === 0 && tcp.length === 0 && tls.length === 0) throw new FieldProblem(['spec'], 'http, tcp or tls must be provided in virtual service');
  const exportTo = exportList(s.exportTo, ['spec', 'exportTo']);

  const spec: VirtualServiceSpec = { hosts, exportTo, http: [], tcp: [], createdAt: creationTimestampIso(o) };
  const namespace = (metadata(o).namespace as string | undefined) ?? 'default';
  http.forEach((r, i) => {
    const route = virtualServiceHttpRoute(r, ['spec', 'http', i], `VirtualService ${namespace}/${name} rule ${i}`, mesh, notes);
    if (route) spec.http.push(route);
  });
  tcp.forEach((r, i) => spec.tcp.push(...tcpRoute(r, ['spec', 'tcp', i], mesh, notes)));
  if (tls.length > 0) notes.push('spec.tls is not applied: nodemesh does not route TLS by SNI yet');
  if (hosts.length === 0) notes.push('a VirtualService without hosts is a delegate, which nodemesh does not support: not applied');
  if (!mesh) notes.push(`applies to gateways ${gateways.join(', ')} only (not mesh): nodemesh routes mesh traffic, so nothing is applied`);
  return { body: { kind: 'VirtualService', spec }, notes };
}

function tcpRoute(v: unknown, path: FieldPath, vsMesh: boolean, notes: string[]): TcpRoute[] {
  const o = object(v, path);
  knownFields(o, path, ['match', 'route']);
  const route = optArray(o.route, [...path, 'route']);
  if (route.length === 0) throw new FieldProblem([...path, 'route'], 'TCP route is required');
  const destinations = route.map((d, i) => {
    const at = [...path, 'route', i];
    const ro = object(d, at);
    knownFields(ro, at, ['destination', 'weight']);
    if (ro.destination === undefined || ro.destination === null) throw new FieldProblem([...at, 'destination'], 'destination is required');
    const dest = destination(ro.destination, [...at, 'destination']);
    dest.weight = route.length === 1 ? 100 : ro.weight === undefined ? 0 : integer(ro.weight, [...at, 'weight'], 0, 2147483647);
    return dest;
  });
  if (route.length > 1 && destinations.every((d) => d.weight === 0)) throw new FieldProblem([...path, 'route'], 'total destination weight = 0: give at least one destination a weight > 0');
  const matches = optArray(o.match, [...path, 'match']);
  if (matches.length === 0) return vsMesh ? [{ port: 0, destinations }] : [];
  const out: TcpRoute[] = [];
  matches.forEach((m, i) => {
    const at = [...path, 'match', i];
    const mo = object(m, at);
    knownFields(mo, at, ['destinationSubnets', 'port', 'sourceLabels', 'gateways', 'sourceNamespace', 'sourceSubnet']);
    const port = optInteger(mo.port, [...at, 'port'], 1, 65535) ?? 0;
    stringMap(mo.sourceLabels, [...at, 'sourceLabels']);
    const gateways = optArray(mo.gateways, [...at, 'gateways']).map((g, j) => string(g, [...at, 'gateways', j]));
    if (!(gateways.length > 0 ? gateways.includes('mesh') : vsMesh)) return;
    const unsupported = ['destinationSubnets', 'sourceLabels', 'sourceNamespace', 'sourceSubnet'].filter((k) => mo[k] !== undefined && mo[k] !== null);
    if (unsupported.length > 0) {
      notes.push(`${fmt(at)} is not applied: nodemesh matches TCP routes by port only (${unsupported.join(', ')} set)`);
      return;
    }
    out.push({ port, destinations });
  });
  return out;
}

export function validateDestinationRule(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const s = object(o.spec, ['spec']);
  knownFields(s, ['spec'], ['host', 'trafficPolicy', 'subsets', 'exportTo', 'workloadSelector']);
  const notes: string[] = [];
  const host = wildcardDomain(string(s.host, ['spec', 'host']), ['spec', 'host']);
  const top = trafficPolicy(s.trafficPolicy, ['spec', 'trafficPolicy'], notes);
  const spec: DestinationRuleSpec = {
    host,
    exportTo: exportList(s.exportTo, ['spec', 'exportTo']),
    policy: top?.groups ?? {},
    ports: top?.ports ?? [],
    subsets: [],
    workloadSelector: s.workloadSelector !== undefined && s.workloadSelector !== null,
    createdAt: creationTimestampIso(o),
  };
  const names = new Set<string>();
  optArray(s.subsets, ['spec', 'subsets']).forEach((sub, i) => {
    const at = ['spec', 'subsets', i];
    const so = object(sub, at);
    knownFields(so, at, ['name', 'labels', 'trafficPolicy']);
    const subsetName = dns1123Label(string(so.name, [...at, 'name']), [...at, 'name']);
    if (names.has(subsetName)) throw new FieldProblem([...at, 'name'], `duplicate subset names: ${subsetName}`);
    names.add(subsetName);
    const policy = trafficPolicy(so.trafficPolicy, [...at, 'trafficPolicy'], notes);
    spec.subsets.push({ name: subsetName, labels: stringMap(so.labels, [...at, 'labels']), policy: policy?.groups ?? {}, ports: policy?.ports ?? [] });
  });
  const annotations = metadata(o).annotations as Record<string, string> | undefined;
  const annotation = annotations?.[LOAD_BALANCER_ANNOTATION];
  if (annotation !== undefined) peakEwma(annotation, spec, notes);
  const latency = annotations?.[LATENCY_EJECTION_ANNOTATION];
  if (latency !== undefined) latencyEjection(latency, spec, notes);
  if (workloadSelectorLabels(s.workloadSelector, ['spec', 'workloadSelector']))
    notes.push('spec.workloadSelector is not supported by nodemesh yet: this DestinationRule is not applied');
  return { body: { kind: 'DestinationRule', spec }, notes };
}

const LATENCY_EJECTION_ANNOTATION = 'nodemesh.io/latency-ejection';
/** requests an endpoint must have served in an interval before its latency is judged */
const LATENCY_EJECTION_MIN_REQUESTS = 20;

/**
 * `nodemesh.io/load-balancer: PEAK_EWMA` (or `peak-ewma`) selects the latency-aware balancer
 * (Linkerd's peak-EWMA power of two choices), which Istio's `simple` enum has no value for.
 * It is the rule's default: where the rule (or a subset, or a port) writes its own
 * loadBalancer, that one applies.
 */
function peakEwma(value: string, spec: DestinationRuleSpec, notes: string[]): void {
  const path = ['metadata', 'annotations', LOAD_BALANCER_ANNOTATION];
  if (!/^(peak[-_]ewma)$/i.test(value)) throw new FieldProblem(path, `expected PEAK_EWMA, found ${JSON.stringify(value)} (other balancers are set in spec.trafficPolicy.loadBalancer)`);
  if (spec.policy.loadBalancer) {
    notes.push(`annotation ${LOAD_BALANCER_ANNOTATION} is not applied: spec.trafficPolicy.loadBalancer is set`);
    return;
  }
  spec.policy.loadBalancer = { simple: 'PEAK_EWMA' };
}

/**
 * Beyond Istio: `nodemesh.io/latency-ejection: "<factor>"` ejects, at each outlier-detection
 * interval, an endpoint whose p99 latency exceeds factor × the median p99 of its peers (with
 * at least LATENCY_EJECTION_MIN_REQUESTS requests in the interval). It rides on the rule's
 * outlierDetection (interval, baseEjectionTime, maxEjectionPercent apply), so it needs one.
 */
function latencyEjection(value: string, spec: DestinationRuleSpec, notes: string[]): void {
  const path = ['metadata', 'annotations', LATENCY_EJECTION_ANNOTATION];
  const factor = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(factor > 1) || factor > 1000)
    throw new FieldProblem(path, `expected a factor above 1 (e.g. "3": eject an endpoint whose p99 is over 3× its peers'), found ${JSON.stringify(value)}`);
  const od = spec.policy.outlierDetection;
  if (!od) {
    notes.push(`annotation ${LATENCY_EJECTION_ANNOTATION} is not applied: it needs spec.trafficPolicy.outlierDetection (its interval, baseEjectionTime and maxEjectionPercent apply)`);
    return;
  }
  od.latencyEjection = { factor, minRequests: LATENCY_EJECTION_MIN_REQUESTS };
}

/** exportTo: "." (this namespace), "*" (all) or namespace names; Istio's duplicate rules. */
function exportList(v: unknown, path: FieldPath): string[] {
  const list = optArray(v, path).map((e, i) => string(e, [...path, i]));
  list.forEach((e, i) => {
    if (e !== '.' && e !== '*') dns1123Label(e, [...path, i]);
    if (list.indexOf(e) < i) throw new FieldProblem([...path, i], `duplicate entries in exportTo for entry ${e}`);
  });
  if (list.includes('*') && list.length > 1) throw new FieldProblem(path, 'cannot have both public (*) and non-public exportTo values for a resource');
  return list;
}

function isIp(h: string): boolean {
  return /^[0-9.]+$/.test(h) || h.includes(':');
}

/** Istio's host.Name.Matches: equal, or one wildcard covers the other. */
function hostsOverlap(a: string, b: string): boolean {
  if (a === b) return true;
  const covers = (w: string, h: string) => w.startsWith('*') && h.endsWith(w.slice(1));
  return covers(a, b) || covers(b, a);
}

