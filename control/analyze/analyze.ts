// Analysis of a whole configuration: the checks of resource-checks.ts, routing-checks.ts and
// security-checks.ts over the resources in force, their documents and the Services the
// compiler resolved, plus the errors of every rejected resource. Pure and bounded by the
// configuration: the same input gives the same messages, sorted by file, line and code.
// The control plane runs it after each compile (`/debug/config_status`, `nodemesh config
// status`); `nodemesh analyze -f DIR` runs it offline on files (offline.ts).
import type { Service } from '../api/snapshot.js';
import type { Resource } from '../model/resources.js';
import type { SourceDocument } from '../model/source-document.js';
import { ROOT_NAMESPACE_DEFAULT } from '../compile/context.js';
import { analysisContext } from './context.js';
import { LEVEL_ORDER, type AnalysisMessage } from './messages.js';
import { checkRejected, checkResources, type FileErrorInput, type RejectedStatus } from './resource-checks.js';
import { checkRouting } from './routing-checks.js';
import { checkSecurity } from './security-checks.js';

export interface AnalysisInput {
  /** the resources in force */
  resources: readonly Resource[];
  /** the compiled Services (the snapshot's) */
  services: readonly Service[];
  /** the document a resource was read from, for the fields the model drops and their lines */
  documentOf(r: Resource): SourceDocument | undefined;
  statuses: readonly RejectedStatus[];
  fileErrors: readonly FileErrorInput[];
  rootNamespace?: string;
}

export function analyze(input: AnalysisInput): AnalysisMessage[] {
  const ctx = analysisContext(input.resources, input.services, input.documentOf, input.rootNamespace ?? ROOT_NAMESPACE_DEFAULT);
  checkRejected(input.statuses, input.fileErrors, ctx.messages);
  checkResources(ctx);
  checkRouting(ctx);
  checkSecurity(ctx);
  return ctx.messages.sort(
    (a, b) => cmp(a.file ?? '', b.file ?? '') || (a.line ?? 0) - (b.line ?? 0) || LEVEL_ORDER[a.level] - LEVEL_ORDER[b.level] || cmp(a.code, b.code) || cmp(a.field ?? '', b.field ?? ''),
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
