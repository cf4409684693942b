// Checks of one resource at a time, for what the status already knows but a CI step needs
// as coded messages:
// - IST0106: a rejected resource, one message per error found (every error, not the
//   first: validate/all-errors.ts), and a file that could not be read;
// - IST0108: a `nodemesh.io/` annotation (or label) nodemesh does not know, with the closest
//   known one: a typo there is a silent no-op otherwise;
// - NM0105: a field or kind nodemesh accepts but does not apply (the validators' notes that
//   say so); NM0100: the other notes (what nodemesh does with the resource).
import { FAIL_MODE_ANNOTATION, MESH_ANNOTATION } from '../api/snapshot.js';
import { describeKey, type Resource } from '../model/resources.js';
import { CODES, type AnalysisMessage } from './messages.js';
import { isObject, type AnalysisContext } from './context.js';
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
