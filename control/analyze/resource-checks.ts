// Checks of one resource at a time, for what the status already knows but a CI step needs
// as coded messages:
// - IST0106: a rejected resource, one message per error found (every error, not the
//   first: validate/all-errors.ts), and a file that could not be read;
// - IST0108: a `nodemesh.io/` annotation (or label) nodemesh does not know, with the closest
//   known one: a typo there is a silent no-op otherwise;
// - NM0105: a field or kind nodemesh accepts but does not apply (the validators' notes that
//   say so); NM0100: the other notes (what nodemesh does with the resource).
import { FAIL_MODE_ANNOTATION, MESH_ANNOTATION } from '../api/snapshot.js';
import { declaredProtocol } from '../api/port-protocol.js';
import { describeKey, selectsLabels, type Resource, type ServicePortSpec } from '../model/resources.js';
import { CODES, type AnalysisMessage } from './messages.js';
import { isObject, type AnalysisContext, type PodRef, type ServiceRef } from './context.js';
import { closest } from '../validate/fields.js';

/** What analysis needs of a document's status (config-store.ts's ResourceStatus). */
export interface RejectedStatus {
  file: string;
  line: number;
  resource: string;
  state: 'Accepted' | 'Rejected';
  code?: string;
  message: string;
  servingLastGood: boolean;
  errors?: { field?: string; line?: number; detail: string }[];
  moreErrors?: string;
}

/** What analysis needs of a file error (config-store.ts's FileErrorStatus). */
export interface FileErrorInput {
  file: string;
  line?: number;
  resource?: string;
  code: string;
  message: string;
}

/** Every nodemesh.io/ key nodemesh reads, on any kind. */
export const KNOWN_NODEMESH_KEYS: readonly string[] = [MESH_ANNOTATION, FAIL_MODE_ANNOTATION, 'nodemesh.io/load-balancer', 'nodemesh.io/latency-ejection'];

const NOT_APPLIED = /not (yet )?applied|not supported|never enforced|never (known|match)|does not (proxy|originate|tunnel|apply)|is never meshed|attaches to nothing/;

export function checkRejected(statuses: readonly RejectedStatus[], fileErrors: readonly FileErrorInput[], out: AnalysisMessage[]): void {
  const info = CODES.IST0106;
  for (const e of fileErrors)
    out.push({
      code: 'IST0106',
      name: info.name,
      level: info.level,
      resource: e.resource ?? e.file,
      file: e.file,
      ...(e.line ? { line: e.line } : {}),
      message: `Schema validation error: ${e.code}: ${detail(e.message, e.file)}`,
      fix: 'correct the file: nothing of it that is in error is applied',
    });
  for (const s of statuses) {
    if (s.state !== 'Rejected') continue;
    const errors = s.errors ?? [{ detail: s.message }];
    for (const e of errors)
      out.push({
        code: 'IST0106',
        name: info.name,
        level: info.level,
        resource: s.resource,
        file: s.file,
        line: e.line ?? s.line,
        ...(e.field ? { field: e.field } : {}),
        message: `Schema validation error: ${e.detail}`,
        fix: s.servingLastGood ? 'correct the field; until then the last good version of the resource stays in force' : 'correct the field; until then the resource is not applied',
      });
    if (s.moreErrors)
      out.push({
        code: 'IST0106',
        name: info.name,
        level: info.level,
        resource: s.resource,
        file: s.file,
        line: s.line,
        message: `Schema validation error: ${s.moreErrors} more error(s) in this resource, not shown`,
        fix: 'correct the errors above and run again',
      });
  }
}

/** A file error's message without its location prefix (the message's own `file:line: `). */
function detail(message: string, file: string): string {
  return message.startsWith(file) ? message.slice(message.indexOf(': ', file.length) + 2) : message;
}

export function checkResources(ctx: AnalysisContext): void {
  podPortProtocols(ctx);
  for (const r of ctx.resources) {
    annotations(ctx, r);
    for (const note of r.notes) {
      if (r.body.kind === 'Deployment') continue; // "checked only": how nodemesh reads pods, not a finding
      if (NOT_APPLIED.test(note)) ctx.report(r, 'NM0105', undefined, note, 'nodemesh accepts this but it has no effect: remove it, or do not rely on it (the message says what applies instead)');
      else ctx.report(r, 'NM0100', undefined, note, 'nothing, if this is what you meant');
    }
  }
}

function annotations(ctx: AnalysisContext, r: Resource): void {
  const metadata = ctx.raw(r).metadata;
  if (!isObject(metadata)) return;
  for (const where of ['annotations', 'labels'] as const) {
    const map = metadata[where];
    if (!isObject(map)) continue;
    for (const key of Object.keys(map)) {
      if (!key.startsWith('nodemesh.io/') || KNOWN_NODEMESH_KEYS.includes(key)) continue;
      const near = closest(key, KNOWN_NODEMESH_KEYS);
      ctx.report(
        r,
        'IST0108',
        ['metadata', where, key],
        `Unknown ${where === 'annotations' ? 'annotation' : 'label'}: ${key}${near ? `; did you mean ${near}?` : ''}`,
        `nodemesh reads ${KNOWN_NODEMESH_KEYS.join(', ')}; correct the key or remove it (${describeKey(r.key)} is otherwise applied without it)`,
      );
    }
  }
}

/**
 * A pod port that one Service port declares HTTP (http, http2, grpc…) and another TCP (tcp,
 * tls, mysql…): the destination's node proxy serves a pod port as the first Service of it in
 * the snapshot says (agent/state/proxy-state.ts serviceFor), whichever Service the client
 * used. Pods by the Services' selectors (as written: offline files have no pod IPs), named
 * target ports through their containers' ports; reported on each later Service port, once
 * per pair of Service ports.
 */
function podPortProtocols(ctx: AnalysisContext): void {
  type Claim = { svc: ServiceRef; port: ServicePortSpec; declared: 'http' | 'tcp' };
  const first = new Map<string, Claim>();
  const reported = new Set<string>();
  // the snapshot's order of Services, which the agents' first-wins follows
  const order = ctx.compiled.map((c) => ctx.services.get(`${c.namespace}/${c.name}`)).filter((x): x is ServiceRef => x !== undefined);
  // pods by namespace and label pair: a selector's candidates are those of one of its pairs
  // (a Service per pod of a namespace would otherwise scan the namespace once per Service)
  const byLabel = new Map<string, PodRef[]>();
  for (const [ns, pods] of ctx.podsByNamespace)
    for (const p of pods)
      for (const [k, v] of Object.entries(p.spec.labels)) {
        const key = `${ns}\n${k}\n${v}`;
        const list = byLabel.get(key);
        if (list) list.push(p);
        else byLabel.set(key, [p]);
      }
  for (const svc of order) {
    const selector = svc.spec.selector;
    const pairs = Object.entries(selector ?? {});
    if (pairs.length === 0) continue;
    const [k, v] = pairs[0]!;
    const pods = (byLabel.get(`${svc.r.key.namespace}\n${k}\n${v}`) ?? []).filter((p) => selectsLabels(selector!, p.spec.labels));
    svc.spec.ports.forEach((port, index) => {
      if (port.protocol !== 'TCP') return;
      const d = declaredProtocol(port);
      const declared = d === 'http' || d === 'http2' ? 'http' : d === 'tcp' ? 'tcp' : undefined;
      for (const pod of pods) {
        const target = podPort(port, pod);
        if (target === undefined) continue;
        const key = `${describeKey(pod.r.key)}:${target}`;
        const was = first.get(key);
        if (!was) {
          if (declared) first.set(key, { svc, port, declared });
          continue;
        }
        if (!declared || was.declared === declared || was.svc === svc) continue;
        const pair = `${describeKey(was.svc.r.key)}:${was.port.port}|${describeKey(svc.r.key)}:${port.port}`;
        if (reported.has(pair)) continue;
        reported.add(pair);
        const other = `Service ${was.svc.r.key.namespace}/${was.svc.r.key.name} port ${was.port.port}`;
        const consequence =
          was.declared === 'http'
            ? "connections through this port are read as HTTP there: a protocol whose server speaks first (MySQL, SMTP) waits for its client's first bytes up to the request head timeout"
            : 'requests through this port are relayed there as TCP: no request metrics from the destination (reporter="destination"), only TCP ones';
        ctx.report(
          svc.r,
          'NM0107',
          ['spec', 'ports', index],
          `port ${port.port} (${portWord(port)}) reaches pod port ${target} of ${pod.r.key.namespace}/${pod.r.key.name}, which ${other} (${portWord(was.port)}) reaches too: the destination's node proxy serves that pod port as ${other} declares it (${was.declared.toUpperCase()}), so ${consequence}`,
          'declare both Service ports with the same protocol (their names or appProtocol), or target different pod ports',
        );
      }
    });
  }
}

/** The pod port a Service port targets on `pod`: a number, its own port, or a named container port (undefined: not on this pod). */
function podPort(port: ServicePortSpec, pod: PodRef): number | undefined {
  if (port.targetPort === undefined) return port.port;
  if (typeof port.targetPort === 'number') return port.targetPort;
  for (const c of pod.spec.containers) for (const p of c.ports) if (p.name === port.targetPort) return p.containerPort;
  return undefined;
}

/** How a port declares its protocol, for a message: `appProtocol http`, `name "tcp-db"`. */
function portWord(p: ServicePortSpec): string {
  return p.appProtocol ? `appProtocol ${p.appProtocol}` : `name ${JSON.stringify(p.name)}`;
}
