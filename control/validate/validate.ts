// Per-resource validation: one SourceDocument → a typed Resource, or a ConfigError naming
// the file (and line), the resource (`Service default/web`) and the field path
// (`spec.ports[0].port`), and saying what was expected.
//
// Kinds:
// - kinds nodemesh compiles have a validator: the core ones (core.ts), Istio networking and
//   security (istio-networking.ts, istio-security.ts), Gateway API routes (gateway-api.ts);
// - the other Istio and Gateway API kinds are known but not compiled: they are accepted with
//   the note "not yet applied by nodemesh (ignored)", so that nothing is a silent no-op;
// - anything else is NM_ERR_CONFIG_KIND.
// A document larger than the per-resource limit (model/limits.ts) is NM_ERR_CONFIG_LIMIT
// before anything else is looked at: Kubernetes refuses such an object at the API server.
import { validateTelemetry } from './istio-telemetry.js';
import { ConfigError } from '../../common/errors.js';
import {
  CLUSTER_SCOPED_KINDS,
  describeKey,
  groupOf,
  type Resource,
  type ResourceKey,
  type ValidatedBody,
} from '../model/resources.js';
import { formatFieldPath, type FieldPath, type SourceDocument } from '../model/source-document.js';
import { DEFAULT_CONFIG_LIMITS, formatBytes, LIMIT_FLAGS, type ConfigLimits } from '../model/limits.js';
import {
  validateDeployment,
  validateNamespace,
  validateNode,
  validatePod,
  validateService,
  validateServiceAccount,
} from './core.js';
import { validateEndpointSlice } from './endpoint-slice.js';
import { validateDestinationRule, validateVirtualService } from './istio-networking.js';
import { validateHttpRoute, validateReferenceGrant, validateTcpRoute } from './gateway-api.js';
import { validateAuthorizationPolicy, validatePeerAuthentication } from './istio-security.js';
import { FieldProblem, metadata, optObject, stringMap, type Obj } from './fields.js';
import { dns1123Label } from './names.js';
import { collectProblems } from './all-errors.js';

export const NOT_YET_APPLIED = 'not yet applied by nodemesh (ignored)';

interface KindInfo {
  versions: readonly string[];
  validate?: (o: Obj, name: string) => ValidatedBody;
}

const ISTIO_NETWORKING = ['v1alpha3', 'v1beta1', 'v1'];
const ISTIO_SECURITY = ['v1beta1', 'v1'];
const GATEWAY_API = ['v1alpha2', 'v1alpha3', 'v1beta1', 'v1'];

/** group → kind → versions (and validator for compiled kinds). */
const KINDS: ReadonlyMap<string, ReadonlyMap<string, KindInfo>> = new Map([
  [
    '',
    new Map<string, KindInfo>([
      ['Namespace', { versions: ['v1'], validate: validateNamespace }],
      ['Node', { versions: ['v1'], validate: validateNode }],
      ['Pod', { versions: ['v1'], validate: validatePod }],
      ['Service', { versions: ['v1'], validate: validateService }],
      ['ServiceAccount', { versions: ['v1'], validate: validateServiceAccount }],
    ]),
  ],
  ['apps', new Map<string, KindInfo>([['Deployment', { versions: ['v1'], validate: validateDeployment }]])],
  ['discovery.k8s.io', new Map<string, KindInfo>([['EndpointSlice', { versions: ['v1'], validate: validateEndpointSlice }]])],
  [
    'networking.istio.io',
    new Map<string, KindInfo>([
      ['VirtualService', { versions: ISTIO_NETWORKING, validate: validateVirtualService }],
      ['DestinationRule', { versions: ISTIO_NETWORKING, validate: validateDestinationRule }],
      ...['Gateway', 'ServiceEntry', 'Sidecar', 'WorkloadEntry', 'WorkloadGroup', 'EnvoyFilter', 'ProxyConfig'].map((k): [string, KindInfo] => [k, { versions: ISTIO_NETWORKING }]),
    ]),
  ],
  [
    'security.istio.io',
    new Map<string, KindInfo>([
      ['PeerAuthentication', { versions: ISTIO_SECURITY, validate: validatePeerAuthentication }],
      ['AuthorizationPolicy', { versions: ISTIO_SECURITY, validate: validateAuthorizationPolicy }],
      ['RequestAuthentication', { versions: ISTIO_SECURITY }],
    ]),
  ],
  ['telemetry.istio.io', new Map([['Telemetry', { versions: ['v1alpha1', 'v1'], validate: validateTelemetry }]])],
  [
    'gateway.networking.k8s.io',
    new Map<string, KindInfo>([
      ['HTTPRoute', { versions: GATEWAY_API, validate: validateHttpRoute }],
      ['TCPRoute', { versions: GATEWAY_API, validate: validateTcpRoute }],
      ['ReferenceGrant', { versions: GATEWAY_API, validate: validateReferenceGrant }],
      ...['GatewayClass', 'Gateway', 'GRPCRoute', 'TLSRoute', 'UDPRoute', 'BackendTLSPolicy'].map((k): [string, KindInfo] => [k, { versions: GATEWAY_API }]),
    ]),
  ],
]);

/** The kind is compiled into the snapshot (has a validator), rather than accepted as "not yet applied". */
export function compiledKind(apiVersion: string, kind: string): boolean {
  return KINDS.get(groupOf(apiVersion))?.get(kind)?.validate !== undefined;
}

/** The errors of one resource shown in its status; the rest are counted (`moreErrors`). */
export const MAX_ERRORS_SHOWN = 10;

export type ValidationResult =
  | { ok: true; resource: Resource }
  | {
      ok: false;
      key: ResourceKey;
      /** the first error (what the status line says) */
      error: ConfigError;
      /** every error found, the first included, at most MAX_ERRORS_SHOWN */
      errors: ConfigError[];
      /** errors found beyond `errors`; `moreMayExist`: the search stopped at its bound */
      moreErrors: number;
      moreMayExist: boolean;
    };

/** The store key of a document (namespace defaulted to "default" for namespaced kinds). */
export function keyOf(doc: SourceDocument): ResourceKey {
  const namespace = CLUSTER_SCOPED_KINDS.has(doc.kind) ? '' : (doc.namespace ?? 'default');
  return { group: groupOf(doc.apiVersion), kind: doc.kind, namespace, name: doc.name };
}

export function validateDocument(doc: SourceDocument, limits: Pick<ConfigLimits, 'resourceBytes'> = DEFAULT_CONFIG_LIMITS): ValidationResult {
  const key = keyOf(doc);
  const resource = describeKey(key);
  const configError = (code: 'NM_ERR_CONFIG_KIND' | 'NM_ERR_CONFIG_FIELD' | 'NM_ERR_CONFIG_LIMIT', detail: string, path?: FieldPath) => {
    const line = (path && doc.lineOf(path)) ?? doc.line;
    const field = path ? formatFieldPath(path) : undefined;
    return new ConfigError(code, { file: doc.file, line, resource, ...(field ? { field } : {}) }, detail);
  };
  const failWith = (errors: ConfigError[], more = 0, moreMayExist = false): ValidationResult => ({
    ok: false,
    key,
    error: errors[0]!,
    errors: errors.slice(0, MAX_ERRORS_SHOWN),
    moreErrors: more + Math.max(0, errors.length - MAX_ERRORS_SHOWN),
    moreMayExist,
  });
  const fail = (code: 'NM_ERR_CONFIG_KIND' | 'NM_ERR_CONFIG_LIMIT', detail: string) => failWith([configError(code, detail)]);

  if (doc.bytes !== undefined && doc.bytes > limits.resourceBytes) {
    return fail(
      'NM_ERR_CONFIG_LIMIT',
      `the resource is ${formatBytes(doc.bytes)} of YAML, over the limit of ${formatBytes(limits.resourceBytes)} per resource (${LIMIT_FLAGS.resourceBytes}; Kubernetes itself stores no object over ~1.5 MiB)`,
    );
  }

  const kinds = KINDS.get(key.group);
  const info = kinds?.get(doc.kind);
  if (!info) {
    const hint = kinds
      ? `known ${key.group || 'core'} kinds: ${[...kinds.keys()].join(', ')}`
      : `nodemesh reads core Kubernetes (v1, apps/v1), Istio (*.istio.io) and Gateway API (gateway.networking.k8s.io) resources`;
    return fail('NM_ERR_CONFIG_KIND', `unknown kind ${doc.kind} in apiVersion ${doc.apiVersion}; ${hint}`);
  }
  const version = doc.apiVersion.slice(doc.apiVersion.lastIndexOf('/') + 1);
  if (!info.versions.includes(version)) {
    const served = info.versions.map((v) => (key.group ? `${key.group}/${v}` : v)).join(', ');
    return fail('NM_ERR_CONFIG_KIND', `apiVersion ${doc.apiVersion} is not known for ${doc.kind}; use ${served}`);
  }

  // one round of validation; a name already found invalid is replaced by a valid stand-in
  // in later rounds, so that the rest of the document is still looked at (all-errors.ts)
  let name = doc.name;
  const validateOnce = (o: Obj): ValidatedBody => {
    const m = metadata(o);
    stringMap(m.labels, ['metadata', 'labels']);
    stringMap(m.annotations, ['metadata', 'annotations']);
    if (info.validate) return info.validate(o, name);
    optObject(o.spec, ['spec']);
    return { body: { kind: 'Ignored' }, notes: [NOT_YET_APPLIED] };
  };
  let checked: ValidatedBody;
  try {
    // the namespace is part of the resource's identity: nothing more is looked at without one
    if (key.namespace !== '') dns1123Label(key.namespace, ['metadata', 'namespace']);
  } catch (err) {
    if (!(err instanceof FieldProblem)) throw err;
    return failWith([configError('NM_ERR_CONFIG_FIELD', err.message, err.path)]);
  }
  try {
    checked = validateOnce(doc.object);
  } catch (err) {
    if (!(err instanceof FieldProblem)) throw err;
    const { problems, truncated } = collectProblems(doc.object, (copy) => {
      try {
        validateOnce(copy);
      } catch (e) {
        if (e instanceof FieldProblem && e.path.length === 2 && e.path[0] === 'metadata' && e.path[1] === 'name' && name !== NAME_STAND_IN) {
          name = NAME_STAND_IN;
          throw e;
        }
        throw e;
      }
    });
    // the first round saw the untouched document: its error leads, as it always did
    const errors = [configError('NM_ERR_CONFIG_FIELD', err.message, err.path)];
    for (const p of problems) if (!(formatFieldPath(p.path) === formatFieldPath(err.path) && p.message === err.message)) errors.push(configError('NM_ERR_CONFIG_FIELD', p.message, p.path));
    return failWith(errors, 0, truncated);
  }
  return {
    ok: true,
    resource: { key, apiVersion: doc.apiVersion, file: doc.file, line: doc.line, body: checked.body, notes: checked.notes },
  };
}

/** A valid metadata.name, for the rounds after an invalid one was reported. */
const NAME_STAND_IN = 'name-reported-invalid';
