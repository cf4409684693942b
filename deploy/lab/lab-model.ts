// Reads a directory of Kubernetes-shaped YAML into the lab model: the Nodes, Namespaces,
// Pods and Services the lab builds and runs, plus every document of every file (the lab
// writes them, completed, into the control plane's config dir). Pure: no addresses that
// depend on the lab's slot (lab-plan.ts), no side effects.
//
// The YAML is read by the control plane's reader (parseYamlFile) and the four kinds the lab
// builds are checked by the control plane's own validators (validateDocument), so the lab
// refuses what the control plane would reject, in the same words. What is the lab's own:
// - workload kinds are refused: there is no controller to make Pods from a Deployment;
// - a Pod needs spec.nodeName naming a declared Node (no scheduler), a command in every
//   container (images are ignored: commands run from the host), no hostNetwork; its env is
//   resolved like the downward API;
// - Node and Pod names name network namespaces, cgroups and log files: at most 63 characters;
// - a duplicate resource or clusterIP fails `lab up` (the control plane would reject the
//   later one); Services without a clusterIP get one, and Namespaces used but not declared
//   are created.
// Other kinds are copied through unread: the control plane reports on them.
// Errors are ConfigErrors that name the file, the line, the resource and the field.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, formatLocation, type ConfigLocation } from '../../common/errors.js';
import { SERVICE_CIDR } from '../../control/compile/compiler.js';
import { clusterIpConflictError, duplicateError } from '../../control/config-store.js';
import { describeKey, keyString, type NodeSpec, type PodSpec, type Resource, type ServiceSpec } from '../../control/model/resources.js';
import { formatFieldPath, type FieldPath, type SourceDocument } from '../../control/model/source-document.js';
import { parseYamlFile } from '../../control/source/files.js';
import { FieldProblem, isObj, nonEmptyString, object, optArray, string, type Obj } from '../../control/validate/fields.js';
import { keyOf, validateDocument } from '../../control/validate/validate.js';
import { intToIpv4, ipv4ToInt } from '../../common/ip.js';

/** the range a non-meshed pod's connect() to a ClusterIP fails fast in (unreachable route) */
export const SERVICE_RANGE_UNREACHABLE = '10.96.0.0/12';
const FIRST_ALLOCATED = ipv4ToInt('10.96.0.10')!;
const LAST_ALLOCATED = ipv4ToInt('10.96.255.254')!;

export interface ModelDocument {
  source: SourceDocument;
  /** set for the kinds the lab builds (v1 Node, Namespace, Pod, Service) */
  resource?: ModelResource;
}

export interface ModelFile {
  /** relative to the lab dir */
  name: string;
  text: string;
  documents: ModelDocument[];
}

export type ModelResource = ModelNode | ModelNamespace | ModelPod | ModelService;

interface Declared {
  name: string;
  file: string;
  line: number;
}

export interface ModelNode extends Declared {
  kind: 'Node';
  spec: NodeSpec;
}

export interface ModelNamespace extends Declared {
  kind: 'Namespace';
  /** false: implied by a namespaced resource; the lab creates it */
  declared: boolean;
}

/** env values the lab fills in like the downward API does */
export type FieldRef = 'metadata.name' | 'metadata.namespace' | 'spec.nodeName' | 'status.podIP' | 'status.hostIP' | 'spec.serviceAccountName';
const FIELD_REFS: ReadonlySet<string> = new Set<FieldRef>([
  'metadata.name',
  'metadata.namespace',
  'spec.nodeName',
  'status.podIP',
  'status.hostIP',
  'spec.serviceAccountName',
]);

/** What the lab runs of a container: the command, its env, the TCP ports to wait for. */
export interface LabContainer {
  name: string;
  /** command + args */
  argv: string[];
  env: { name: string; value?: string; fieldRef?: FieldRef }[];
  tcpPorts: number[];
}

export interface ModelPod extends Declared {
  kind: 'Pod';
  namespace: string;
  spec: PodSpec;
  containers: LabContainer[];
}

export interface ModelService extends Declared {
  kind: 'Service';
  namespace: string;
  spec: ServiceSpec;
  /** spec.clusterIP, or allocated from SERVICE_CIDR; `None` for a headless Service */
  clusterIP: string;
  /** true when the lab allocated the clusterIP (it writes it into the config dir) */
  allocated: boolean;
}

export interface LabModel {
  dir: string;
  files: ModelFile[];
  /** in declaration order (files sorted by name) */
  nodes: ModelNode[];
  namespaces: ModelNamespace[];
  pods: ModelPod[];
  services: ModelService[];
}

const BUILT_KINDS: ReadonlySet<string> = new Set(['Node', 'Namespace', 'Pod', 'Service']);
const WORKLOAD_KINDS: ReadonlySet<string> = new Set(['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'ReplicationController']);
const MAX_NAME = 63;

/** Reads every *.yaml / *.yml file of `dir` (not recursive, sorted by name). */
export async function loadLabModel(dir: string): Promise<LabModel> {
  const abs = path.resolve(dir);
  let names: string[];
  try {
    names = (await readdir(abs)).filter((n) => /\.ya?ml$/.test(n)).sort();
  } catch (err) {
    throw new ConfigError('NM_ERR_CONFIG_YAML', { file: abs }, `cannot read the lab directory: ${(err as Error).message}`);
  }
  if (names.length === 0) {
    throw new ConfigError('NM_ERR_CONFIG_YAML', { file: abs }, 'no *.yaml or *.yml files: write the Nodes, Pods and Services of the lab there');
  }
  const files = await Promise.all(names.map(async (name) => ({ name, text: await readFile(path.join(abs, name), 'utf8') })));
  return parseLabModel(abs, files);
}

/** The pure part of loadLabModel: `files` are `{name, text}` in the order to read them. */
export function parseLabModel(dir: string, files: { name: string; text: string }[]): LabModel {
  const errors: ConfigError[] = [];
  const model: LabModel = { dir, files: [], nodes: [], namespaces: [], pods: [], services: [] };
  const seen = new Map<string, SourceDocument>();
  for (const { name, text } of files) {
    const mf: ModelFile = { name, text, documents: [] };
    model.files.push(mf);
    const parsed = parseYamlFile(name, text);
    if ('error' in parsed) {
      errors.push(parsed.error);
      continue;
    }
    errors.push(...parsed.documentErrors);
    for (const source of parsed.documents) {
      const md: ModelDocument = { source };
      mf.documents.push(md);
      const resource = describeKey(keyOf(source));
      if (WORKLOAD_KINDS.has(source.kind)) {
        errors.push(new ConfigError('NM_ERR_CONFIG_KIND', { file: name, line: source.line, resource }, `the lab runs bare Pods only (there is no controller to make Pods from a ${source.kind}): write one Pod per replica, with spec.nodeName`));
        continue;
      }
      if (source.apiVersion !== 'v1' || !BUILT_KINDS.has(source.kind)) continue; // copied through
      const checked = validateDocument(source);
      if (!checked.ok) {
        errors.push(checked.error);
        continue;
      }
      const key = keyString(checked.resource.key);
      const first = seen.get(key);
      if (first) {
        errors.push(duplicateError(source, resource, first));
        continue;
      }
      seen.set(key, source);
      try {
        md.resource = labResource(checked.resource, source);
      } catch (err) {
        if (!(err instanceof FieldProblem)) throw err;
        errors.push(fieldError(source, err.path, err.message));
      }
    }
  }
  for (const mf of model.files) {
    for (const { resource: r } of mf.documents) {
      if (r?.kind === 'Node') model.nodes.push(r);
      else if (r?.kind === 'Namespace') model.namespaces.push(r);
      else if (r?.kind === 'Pod') model.pods.push(r);
      else if (r?.kind === 'Service') model.services.push(r);
    }
  }
  crossCheck(model, errors);
  throwIfAny(errors);
  return model;
}

/** What the lab takes of a validated resource, and the checks that are the lab's own. */
function labResource(r: Resource, doc: SourceDocument): ModelResource {
  const { name, namespace } = r.key;
  const where = { name, file: r.file, line: r.line };
  const shortName = () => {
    if (name.length > MAX_NAME)
      throw new FieldProblem(['metadata', 'name'], `${JSON.stringify(name)} is too long for the lab: at most ${MAX_NAME} characters (it names the ${r.key.kind}'s network namespace, cgroup and files)`);
  };
  switch (r.body.kind) {
    case 'Node':
      shortName();
      return { kind: 'Node', ...where, spec: r.body.spec };
    case 'Namespace':
      return { kind: 'Namespace', ...where, declared: true };
    case 'Service':
      return { kind: 'Service', ...where, namespace, spec: r.body.spec, clusterIP: r.body.spec.clusterIP ?? '', allocated: false };
    case 'Pod': {
      shortName();
      const spec = r.body.spec;
      if (spec.hostNetwork) throw new FieldProblem(['spec', 'hostNetwork'], 'the lab gives every Pod its own network namespace: remove hostNetwork');
      if (spec.nodeName === '') throw new FieldProblem(['spec', 'nodeName'], 'the lab has no scheduler: set spec.nodeName to one of the Nodes');
      const raw = optArray((doc.object.spec as Obj).containers, ['spec', 'containers']);
      const containers = spec.containers.map((c, i): LabContainer => {
        const at = ['spec', 'containers', i];
        if (c.command.length === 0)
          throw new FieldProblem([...at, 'command'], 'the lab ignores images and runs the command from the host filesystem (cwd = the lab dir): set command, e.g. [node, server.js]');
        return {
          name: c.name,
          argv: [...c.command, ...c.args],
          env: containerEnv((raw[i] as Obj).env, [...at, 'env']),
          tcpPorts: c.ports.filter((p) => p.protocol === 'TCP').map((p) => p.containerPort),
        };
      });
      return { kind: 'Pod', ...where, namespace, spec, containers };
    }
    default:
      throw new Error(`not a kind the lab builds: ${r.key.kind}`);
  }
}

/** `env` as written: values, or fieldRefs the lab resolves like the downward API. */
function containerEnv(v: unknown, path: FieldPath): LabContainer['env'] {
  return optArray(v, path).map((e, i) => {
    const at = [...path, i];
    const entry = object(e, at);
    const name = nonEmptyString(entry.name, [...at, 'name']);
    if (entry.value !== undefined) return { name, value: string(entry.value, [...at, 'value']) };
    if (entry.valueFrom === undefined) return { name, value: '' };
    const ref = isObj(entry.valueFrom) && isObj(entry.valueFrom.fieldRef) ? entry.valueFrom.fieldRef.fieldPath : undefined;
    if (typeof ref === 'string' && FIELD_REFS.has(ref)) return { name, fieldRef: ref as FieldRef };
    throw new FieldProblem([...at, 'valueFrom'], `the lab supports only valueFrom.fieldRef.fieldPath in: ${[...FIELD_REFS].join(', ')}`);
  });
}

/** What needs the whole model: node references, implied namespaces, ClusterIPs. */
function crossCheck(model: LabModel, errors: ConfigError[]): void {
  const nodes = new Set(model.nodes.map((n) => n.name));
  const nodeError = (p: ModelPod, detail: string) => errors.push(fieldError(sourceOf(model, p), ['spec', 'nodeName'], detail));
  if (model.nodes.length === 0 && model.pods.length > 0) nodeError(model.pods[0]!, 'no Node is declared: add `apiVersion: v1, kind: Node` documents');
  for (const p of model.pods) {
    if (!nodes.has(p.spec.nodeName) && model.nodes.length > 0) nodeError(p, `no Node "${p.spec.nodeName}" (declared: ${[...nodes].join(', ')})`);
  }
  const declared = new Set(model.namespaces.map((n) => n.name));
  for (const r of [...model.pods, ...model.services]) {
    if (declared.has(r.namespace)) continue;
    declared.add(r.namespace);
    model.namespaces.push({ kind: 'Namespace', name: r.namespace, file: r.file, line: r.line, declared: false });
  }
  const byIp = new Map<string, ModelService>();
  for (const s of model.services) {
    if (!s.clusterIP || s.clusterIP === 'None') continue;
    const other = byIp.get(s.clusterIP);
    if (other) errors.push(clusterIpConflictError(sourceOf(model, s), `Service ${s.namespace}/${s.name}`, s.clusterIP, `Service ${other.namespace}/${other.name}`, other));
    byIp.set(s.clusterIP, s);
  }
  // deterministic: the lowest free address, in declaration order
  let next = FIRST_ALLOCATED;
  for (const s of model.services) {
    if (s.clusterIP) continue;
    while (next <= LAST_ALLOCATED && byIp.has(intToIpv4(next))) next++;
    if (next > LAST_ALLOCATED) {
      errors.push(new ConfigError('NM_ERR_CONFIG_CONFLICT', { file: s.file, line: s.line, resource: `Service ${s.namespace}/${s.name}`, field: 'spec.clusterIP' }, `${SERVICE_CIDR} is exhausted`));
      return;
    }
    s.clusterIP = intToIpv4(next++);
    s.allocated = true;
    byIp.set(s.clusterIP, s);
  }
}

function sourceOf(model: LabModel, r: ModelResource): SourceDocument {
  for (const f of model.files) for (const d of f.documents) if (d.resource === r) return d.source;
  throw new Error(`no document for ${r.kind} ${r.name}`);
}

/**
 * A problem with `path` of `doc`, at the line of the field or, when the field is missing, of
 * the closest enclosing one that is written (a container without `command`: its line).
 */
function fieldError(doc: SourceDocument, path: FieldPath, detail: string): ConfigError {
  let line: number | undefined;
  for (let n = path.length; n > 0 && line === undefined; n--) line = doc.lineOf(path.slice(0, n));
  const location: ConfigLocation = { file: doc.file, line: line ?? doc.line, resource: describeKey(keyOf(doc)), field: formatFieldPath(path) };
  return new ConfigError('NM_ERR_CONFIG_FIELD', location, detail);
}

function throwIfAny(errors: ConfigError[]): void {
  const [first, ...rest] = errors;
  if (!first) return;
  if (rest.length === 0) throw first;
  const more = rest.slice(0, 9).map((e) => `\n  also: ${e.message}`).join('');
  throw new ConfigError(first.code, first.location, `${first.message.slice(formatLocation(first.location).length + 2)}${more}${rest.length > 9 ? `\n  (and ${rest.length - 9} more)` : ''}`);
}

