// What every check sees: the resources in force, the documents they were read from (for the
// fields and lines the model drops), the Services and pods by name, and `report`, which
// turns a finding into a message with file, line and field.
import type { Service } from '../api/snapshot.js';
import { CLUSTER_DOMAIN } from '../api/snapshot.js';
import { describeKey, selectsLabels, type PodSpec, type Resource, type ServiceSpec } from '../model/resources.js';
import { formatFieldPath, type FieldPath, type SourceDocument } from '../model/source-document.js';
import { coveredHosts, resolveHost, startRoutingCompilation, type RoutingCompilation } from '../compile/routing-compilation.js';
import { CODES, type AnalysisMessage, type Code } from './messages.js';

export interface PodRef {
  r: Resource;
  spec: PodSpec;
}

export interface ServiceRef {
  r: Resource;
  spec: ServiceSpec;
}

export interface AnalysisContext {
  resources: readonly Resource[];
  doc(r: Resource): SourceDocument | undefined;
  /** the raw object of a resource ({} when its document is not known) */
  raw(r: Resource): Record<string, unknown>;
  /** Service hostnames as the compiler resolves them */
  routing: RoutingCompilation;
  /** the compiled Services (the snapshot's, in its order): ports resolved to pods' */
  compiled: readonly Service[];
  /** by `ns/name` */
  services: ReadonlyMap<string, ServiceRef>;
  podsByNamespace: ReadonlyMap<string, PodRef[]>;
  rootNamespace: string;
  report(r: Resource, code: Code, path: FieldPath | undefined, message: string, fix: string): void;
  messages: AnalysisMessage[];
}

export function analysisContext(
  resources: readonly Resource[],
  services: readonly Service[],
  documentOf: (r: Resource) => SourceDocument | undefined,
  rootNamespace: string,
): AnalysisContext {
  const byNsName = new Map<string, ServiceRef>();
  const pods = new Map<string, PodRef[]>();
  for (const r of resources) {
    if (r.body.kind === 'Service') byNsName.set(`${r.key.namespace}/${r.key.name}`, { r, spec: r.body.spec });
    if (r.body.kind === 'Pod' && !r.body.spec.terminating && r.body.spec.phase !== 'Succeeded' && r.body.spec.phase !== 'Failed') {
      const list = pods.get(r.key.namespace) ?? [];
      list.push({ r, spec: r.body.spec });
      pods.set(r.key.namespace, list);
    }
  }
  const messages: AnalysisMessage[] = [];
  return {
    resources,
    doc: documentOf,
    raw: (r) => documentOf(r)?.object ?? {},
    routing: startRoutingCompilation({ services, workloads: [], trustDomain: '', rootNamespace }),
    compiled: services,
    services: byNsName,
    podsByNamespace: pods,
    rootNamespace,
    messages,
    report(r, code, path, message, fix) {
      const d = documentOf(r);
      const line = (path && d?.lineOf(path)) ?? r.line;
      const info = CODES[code];
      messages.push({
        code,
        name: info.name,
        level: info.level,
        resource: describeKey(r.key),
        file: r.file,
        ...(line ? { line } : {}),
        ...(path && path.length > 0 ? { field: formatFieldPath(path) } : {}),
        message,
        fix,
      });
    },
  };
}

/** The pods a label selector picks in `namespace` (every namespace for the root namespace, as Istio's mesh-wide policies). */
export function selectedPods(ctx: AnalysisContext, namespace: string, selector: Readonly<Record<string, string>>): PodRef[] {
  const scope = namespace === ctx.rootNamespace ? [...ctx.podsByNamespace.values()].flat() : (ctx.podsByNamespace.get(namespace) ?? []);
  return scope.filter((p) => selectsLabels(selector, p.spec.labels));
}

/** A host as written in `namespace` → the Service hostnames it covers (none: no Service). */
export function servicesOf(ctx: AnalysisContext, host: string, namespace: string): { resolved: string; covered: string[] } {
  const resolved = resolveHost(host, namespace);
  return { resolved, covered: coveredHosts(resolved, ctx.routing).map((c) => c.hostname) };
}

/** `reviews.default.svc.cluster.local` → the Service resource, when it is one. */
export function serviceOfHost(ctx: AnalysisContext, hostname: string): ServiceRef | undefined {
  const suffix = `.svc.${CLUSTER_DOMAIN}`;
  if (!hostname.endsWith(suffix)) return undefined;
  const [name, ns] = hostname.slice(0, -suffix.length).split('.');
  return ns ? ctx.services.get(`${ns}/${name}`) : undefined;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
