// The resource store: the last good version of every resource, keyed by (API group, kind,
// namespace, name), and the status of every document read.
//
// Each `apply` takes the whole current source state (all files) and recomputes:
// - a document that validates replaces its resource;
// - a document that fails validation is Rejected, and the resource's last good version
//   (from any file) stays in force;
// - a resource no longer in any file is removed;
// - two documents claiming the same key, or two Services claiming the same clusterIP:
//   the first in (file path, position in file) order wins, the later one is Rejected with
//   NM_ERR_CONFIG_CONFLICT. The order depends only on the files, so a restart gives the
//   same answer.
import type { ErrorCode } from '../common/errors.js';
import { ConfigError, formatLocation } from '../common/errors.js';
import { describeKey, keyString, type Resource } from './model/resources.js';
import type { SourceDocument } from './model/source-document.js';
import type { SourceState } from './source/files.js';
import { keyOf, validateDocument } from './validate/validate.js';
import type { AnalysisMessage } from './analyze/messages.js';
import { DEFAULT_CONFIG_LIMITS, type ConfigLimits } from './model/limits.js';

export interface ResourceStatus {
  file: string;
  line: number;
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  /** `Service default/web` */
  resource: string;
  state: 'Accepted' | 'Rejected';
  /** set when Rejected */
  code?: ErrorCode;
  /** Rejected: the error; Accepted: notes (e.g. "not yet applied by nodemesh (ignored)"), or "" */
  message: string;
  /** Rejected, and the last good version of the resource is still in force */
  servingLastGood: boolean;
  /**
   * Rejected: every error found in the document (the first is `message`), at most
   * MAX_ERRORS_SHOWN, each with its field and line; `moreErrors` counts the rest (a `+`:
   * at least that many, the search stopped at its bound).
   */
  errors?: ErrorDetail[];
  moreErrors?: string;
}

/** One error of a rejected resource. */
export interface ErrorDetail {
  code: ErrorCode;
  /** `spec.http[0].timeout`; absent when about the whole resource */
  field?: string;
  line?: number;
  /** what is wrong and what to do, without the location */
  detail: string;
}

export interface FileErrorStatus {
  file: string;
  line?: number;
  /** set when the error is about one document (not the whole file) */
  resource?: string;
  code: ErrorCode;
  message: string;
}

export interface StoreResult {
  /** the resources in force, sorted by key */
  resources: Resource[];
  /** one per document read, in (file, position) order */
  statuses: ResourceStatus[];
  /** whole-file and document-structure errors */
  fileErrors: FileErrorStatus[];
  /**
   * Errors not present after the previous apply (an error that persists across
   * unrelated file changes is reported once), with the kind they concern ("" if unknown).
   */
  newErrors: { error: ConfigError; kind: string }[];
}

/** What /debug/config_status serves and `nodemesh config status` prints. */
export interface ConfigStatus {
  configDir: string;
  /** a first snapshot has been compiled */
  ready: boolean;
  snapshotVersion: number;
  resources: ResourceStatus[];
  fileErrors: FileErrorStatus[];
  summary: { accepted: number; rejected: number; fileErrors: number; analysis?: { errors: number; warnings: number; infos: number } };
  /** cross-resource analysis (control/analyze/): Istio's IST codes and nodemesh's NM codes */
  analysis?: AnalysisMessage[];
  /** with --remote-cluster: each remote cluster's source and what it added (remote-clusters.ts) */
  remoteClusters?: RemoteClusterStatus[];
  /** the remote secrets' errors (with --source kubernetes) */
  remoteSecretErrors?: RemoteSecretErrorStatus[];
  /** what of the clusters is not in use yet (an east-west gateway without an address or pods) */
  clusterWarnings?: { cluster: string; resource: string; file: string; line?: number; message: string }[];
}

/** What `/debug/config_status` shows of a remote cluster. */
export interface RemoteClusterStatus {
  name: string;
  network: string;
  configDir: string;
  /** its documents accepted and rejected, and its file errors */
  accepted: number;
  rejected: number;
  fileErrors: FileErrorStatus[];
  /** what it added to the snapshot (filled in by the control plane after each compile) */
  workloads: number;
  services: number;
  notExported: number;
  refused: number;
  /** why its API server cannot be read now (a cluster from a remote secret), naming the Secret and key */
  error?: string;
}

/** A remote secret that names no usable cluster (a key that is no name, a value that is no kubeconfig…). */
export interface RemoteSecretErrorStatus {
  secret: string;
  key: string;
  message: string;
}

interface Claim {
  doc: SourceDocument;
  /** the resource to serve for this key: the new version, or the last good one */
  serving: Resource | undefined;
  status: ResourceStatus;
}

export class ResourceStore {
  private lastGood = new Map<string, Resource>();
  private reported = new Set<string>();
  /**
   * Validation of a document is a function of the document alone, and the source hands the
   * same SourceDocument objects again for the files that did not change: one changed file
   * costs its own documents' validation, not the whole configuration's again.
   */
  private validated = new WeakMap<SourceDocument, ReturnType<typeof validateDocument>>();

  /** the document each validated resource was read from (analysis reads fields the model drops) */
  private documents = new WeakMap<Resource, SourceDocument>();

  constructor(private readonly limits: Pick<ConfigLimits, 'resourceBytes'> = DEFAULT_CONFIG_LIMITS) {}

  /** The document a resource in force was read from. */
  documentOf(r: Resource): SourceDocument | undefined {
    return this.documents.get(r);
  }

  /** The resources in force, sorted by key. */
  resources(): Resource[] {
    return [...this.lastGood.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
  }

  apply(state: SourceState): StoreResult {
    const fileErrors: FileErrorStatus[] = [];
    const errors: { error: ConfigError; kind: string }[] = [];
    const fileError = (error: ConfigError, kind: string) => {
      const { file, line, resource } = error.location;
      fileErrors.push({ file, ...(line ? { line } : {}), ...(resource ? { resource } : {}), code: error.code, message: error.message });
      errors.push({ error, kind });
    };
    if (state.error) fileError(state.error, '');

    const claims = new Map<string, Claim>();
    const statuses: ResourceStatus[] = [];
    for (const file of state.files) {
      if (file.error) fileError(file.error, '');
      for (const e of file.documentErrors) fileError(e, kindFromResource(e.location.resource));
      for (const doc of file.documents) {
        const key = keyOf(doc);
        const ks = keyString(key);
        const base = {
          file: doc.file,
          line: doc.line,
          apiVersion: doc.apiVersion,
          kind: doc.kind,
          namespace: key.namespace,
          name: key.name,
          resource: describeKey(key),
        };
        const first = claims.get(ks);
        if (first) {
          const error = duplicateError(doc, base.resource, first.doc);
          statuses.push(rejected(base, error, false));
          errors.push({ error, kind: doc.kind });
          continue;
        }
        let result = this.validated.get(doc);
        if (!result) {
          result = validateDocument(doc, this.limits);
          this.validated.set(doc, result);
        }
        let claim: Claim;
        if (result.ok) {
          this.documents.set(result.resource, doc);
          claim = { doc, serving: result.resource, status: { ...base, state: 'Accepted', message: result.resource.notes.join('; '), servingLastGood: false } };
        } else {
          const last = this.lastGood.get(ks);
          claim = { doc, serving: last, status: rejected(base, result.error, last !== undefined) };
          claim.status.errors = result.errors.map(errorDetail);
          if (result.moreErrors > 0 || result.moreMayExist) claim.status.moreErrors = `${result.moreErrors}${result.moreMayExist ? '+' : ''}`;
          errors.push({ error: result.error, kind: doc.kind });
        }
        claims.set(ks, claim);
        statuses.push(claim.status);
      }
    }

    this.checkClusterIps(claims, errors);

    const next = new Map<string, Resource>();
    for (const [ks, c] of claims) if (c.serving) next.set(ks, c.serving);
    this.lastGood = next;

    const seen = new Set<string>();
    const newErrors = errors.filter(({ error }) => {
      seen.add(error.message);
      return !this.reported.has(error.message);
    });
    this.reported = seen;
    return { resources: this.resources(), statuses, fileErrors, newErrors };
  }

  /** Two Services with the same clusterIP: the later (file order) is Rejected. */
  private checkClusterIps(claims: Map<string, Claim>, errors: { error: ConfigError; kind: string }[]): void {
    const owner = new Map<string, Claim>();
    const ipOf = (r: Resource | undefined) =>
      r?.body.kind === 'Service' && r.body.spec.clusterIP && r.body.spec.clusterIP !== 'None' ? r.body.spec.clusterIP : undefined;
    for (const [ks, c] of claims) {
      const ip = ipOf(c.serving);
      if (!ip) continue;
      const first = owner.get(ip);
      if (!first) {
        owner.set(ip, c);
        continue;
      }
      const error = clusterIpConflictError(c.doc, c.status.resource, ip, first.status.resource, first.doc);
      errors.push({ error, kind: 'Service' });
      // a new version that conflicts falls back to the last good one if that one is free
      const last = this.lastGood.get(ks);
      const lastIp = ipOf(last);
      const fallback = last !== c.serving && last && (!lastIp || !owner.has(lastIp)) ? last : undefined;
      if (fallback && lastIp) owner.set(lastIp, c);
      c.serving = fallback;
      Object.assign(c.status, rejected(c.status, error, fallback !== undefined));
    }
  }
}

/** NM_ERR_CONFIG_CONFLICT: `doc` defines `resource` again, after `first`. */
export function duplicateError(doc: SourceDocument, resource: string, first: Pick<SourceDocument, 'file' | 'line'>): ConfigError {
  return new ConfigError(
    'NM_ERR_CONFIG_CONFLICT',
    { file: doc.file, line: doc.lineOf(['metadata', 'name']) ?? doc.line, resource, field: 'metadata.name' },
    `also defined at ${first.file}:${first.line}, which wins (the first in file order); remove or rename one of them`,
  );
}

/** NM_ERR_CONFIG_CONFLICT: the Service `resource` in `doc` asks for `ip`, which `owner` (in `ownerDoc`) has. */
export function clusterIpConflictError(doc: SourceDocument, resource: string, ip: string, owner: string, ownerDoc: Pick<SourceDocument, 'file' | 'line'>): ConfigError {
  return new ConfigError(
    'NM_ERR_CONFIG_CONFLICT',
    { file: doc.file, line: doc.lineOf(['spec', 'clusterIP']) ?? doc.line, resource, field: 'spec.clusterIP' },
    `clusterIP ${ip} is already used by ${owner} (${ownerDoc.file}:${ownerDoc.line}); choose another address or leave clusterIP out to have one allocated`,
  );
}

function rejected(base: Omit<ResourceStatus, 'state' | 'message' | 'servingLastGood' | 'code'>, error: ConfigError, servingLastGood: boolean): ResourceStatus {
  const tail = servingLastGood ? ' (its last good version stays in force)' : '';
  return {
    file: base.file,
    line: base.line,
    apiVersion: base.apiVersion,
    kind: base.kind,
    namespace: base.namespace,
    name: base.name,
    resource: base.resource,
    state: 'Rejected',
    code: error.code,
    message: error.message + tail,
    servingLastGood,
  };
}

/** A ConfigError as one line of a resource's status: the location is the status row's. */
export function errorDetail(e: ConfigError): ErrorDetail {
  return { code: e.code, ...(e.location.field ? { field: e.location.field } : {}), ...(e.location.line ? { line: e.location.line } : {}), detail: detailOf(e) };
}

function detailOf(e: ConfigError): string {
  const loc = formatLocation(e.location);
  return e.message.startsWith(`${loc}: `) ? e.message.slice(loc.length + 2) : e.message;
}

function kindFromResource(resource: string | undefined): string {
  return resource?.split(' ')[0] ?? '';
}
