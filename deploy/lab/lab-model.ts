// Reads a directory of Kubernetes-shaped YAML into the lab model: the Nodes, Namespaces,
// Pods and Services the lab builds and runs, plus every document of every file (the lab
// writes them, completed, into the control plane's config dir). Pure: no addresses that
// depend on the lab's slot (lab-plan.ts), no side effects. Errors are ConfigErrors that
// name the file, the resource and the field.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { ConfigError, formatLocation, type ConfigLocation, type ErrorCode } from '../../common/errors.js';

export const SERVICE_CIDR = '10.96.0.0/16';
/** the range a non-meshed pod's connect() to a ClusterIP fails fast in (unreachable route) */
export const SERVICE_RANGE_UNREACHABLE = '10.96.0.0/12';
const FIRST_ALLOCATED = ipToInt('10.96.0.10');
const LAST_ALLOCATED = ipToInt('10.96.255.254');

export interface ModelDocument {
  doc: Document;
  /** 1-based line where the document starts */
  line: number;
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

interface ResourceBase {
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  file: string;
  line: number;
}

export interface ModelNode extends ResourceBase {
  kind: 'Node';
}

export interface ModelNamespace extends ResourceBase {
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

export interface ModelContainer {
  name: string;
  /** command + args */
  argv: string[];
  env: { name: string; value?: string; fieldRef?: FieldRef }[];
  /** TCP container ports: the lab waits until each is listening */
  tcpPorts: number[];
  ports: { name: string; containerPort: number; protocol: string }[];
}

export interface ModelPod extends ResourceBase {
  kind: 'Pod';
  namespace: string;
  nodeName: string;
  serviceAccountName: string;
  containers: ModelContainer[];
}

export interface ModelServicePort {
  name: string;
  port: number;
  targetPort: number | string;
  protocol: string;
}

export interface ModelService extends ResourceBase {
  kind: 'Service';
  namespace: string;
  /** allocated from SERVICE_CIDR unless given; `None` for a headless Service */
  clusterIP: string;
  /** true when the lab allocated the clusterIP (it writes it into the config dir) */
  allocated: boolean;
  selector: Record<string, string> | undefined;
  ports: ModelServicePort[];
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

const WORKLOAD_KINDS = new Set(['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'ReplicationController']);
const LABEL_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const SERVICE_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

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
  const p = new Parser();
  const model: LabModel = { dir, files: [], nodes: [], namespaces: [], pods: [], services: [] };
  for (const f of files) model.files.push(p.file(f.name, f.text));
  for (const mf of model.files) {
    for (const d of mf.documents) {
      const r = d.resource;
      if (!r) continue;
      if (r.kind === 'Node') model.nodes.push(r);
      else if (r.kind === 'Namespace') model.namespaces.push(r);
      else if (r.kind === 'Pod') model.pods.push(r);
      else model.services.push(r);
    }
  }
  p.crossCheck(model);
  p.throwIfAny();
  return model;
}

class Parser {
  private readonly errors: ConfigError[] = [];
  private readonly seen = new Map<string, ConfigLocation>();

  file(name: string, text: string): ModelFile {
    const lc = new LineCounter();
    const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false });
    const out: ModelFile = { name, text, documents: [] };
    if (!Array.isArray(docs)) return out; // an empty file
    for (const doc of docs) {
      const line = lc.linePos(doc.range[0]).line;
      const bad = doc.errors[0];
      if (bad) {
        this.fail('NM_ERR_CONFIG_YAML', { file: name, line: lc.linePos(bad.pos[0]).line }, `not valid YAML: ${bad.message.split('\n')[0]}`);
        continue;
      }
      const js: unknown = doc.toJS();
      if (js === null || js === undefined) continue; // an empty document (`---` at the end)
      const at = (field: string): ConfigLocation => ({ file: name, line: lineOf(doc, lc, field) ?? line, field });
      const md: ModelDocument = { doc, line };
      out.documents.push(md);
      if (!isObject(js)) {
        this.fail('NM_ERR_CONFIG_KIND', { file: name, line }, 'a document must be a mapping with apiVersion, kind and metadata');
        continue;
      }
      const kind = js.kind;
      const apiVersion = js.apiVersion;
      if (typeof kind !== 'string' || typeof apiVersion !== 'string') {
        this.fail('NM_ERR_CONFIG_KIND', { file: name, line, field: typeof kind !== 'string' ? 'kind' : 'apiVersion' }, 'apiVersion and kind are required strings');
        continue;
      }
      if (WORKLOAD_KINDS.has(kind)) {
        this.fail('NM_ERR_CONFIG_KIND', { file: name, line, resource: `${kind} ${resourceName(js)}` }, `the lab runs bare Pods only (there is no controller to make Pods from a ${kind}): write one Pod per replica, with spec.nodeName`);
        continue;
      }
      if (apiVersion !== 'v1' || !['Node', 'Namespace', 'Pod', 'Service'].includes(kind)) continue; // copied through
      const r = this.resource(kind as ModelResource['kind'], js, name, line, at);
      if (r) md.resource = r;
    }
    return out;
  }

  private resource(kind: ModelResource['kind'], js: Record<string, unknown>, file: string, line: number, at: (f: string) => ConfigLocation): ModelResource | undefined {
    const md = js.metadata;
    const loc = (field: string, resource?: string): ConfigLocation => ({ ...at(field), ...(resource ? { resource } : {}) });
    if (!isObject(md) || typeof md.name !== 'string' || md.name === '') {
      this.fail('NM_ERR_CONFIG_FIELD', loc('metadata.name', `${kind} (unnamed)`), 'metadata.name is required');
      return undefined;
    }
    const name = md.name;
    const namespaced = kind === 'Pod' || kind === 'Service';
    const namespace = namespaced ? (md.namespace ?? 'default') : '';
    const rid = namespaced ? `${kind} ${String(namespace)}/${name}` : `${kind} ${name}`;
    const errs = this.errors.length;
    const pattern = kind === 'Service' || kind === 'Namespace' ? SERVICE_NAME : kind === 'Pod' ? LABEL_NAME : SUBDOMAIN_NAME;
    if (!pattern.test(name) || name.length > 63) {
      this.fail('NM_ERR_CONFIG_FIELD', loc('metadata.name', rid), `"${name}" is not a valid ${kind} name (lowercase letters, digits and '-', at most 63 characters${kind === 'Node' ? ", '.' allowed" : ''})`);
    }
    if (namespaced && (typeof namespace !== 'string' || !SERVICE_NAME.test(namespace) || namespace.length > 63)) {
      this.fail('NM_ERR_CONFIG_FIELD', loc('metadata.namespace', rid), `"${String(namespace)}" is not a valid namespace name`);
    }
    const labels = this.stringMap(md.labels, loc('metadata.labels', rid));
    const annotations = this.stringMap(md.annotations, loc('metadata.annotations', rid));
    const key = `${kind}\u0000${String(namespace)}\u0000${name}`;
    const first = this.seen.get(key);
    if (first) this.fail('NM_ERR_CONFIG_CONFLICT', loc('metadata.name', rid), `declared twice (first at ${formatLocation(first)})`);
    else this.seen.set(key, { file, line });
    const base = { name, labels, annotations, file, line };
    let r: ModelResource | undefined;
    if (kind === 'Node') r = { kind, ...base };
    else if (kind === 'Namespace') r = { kind, ...base, declared: true };
    else if (kind === 'Pod') r = this.pod(base, String(namespace), js.spec, (f) => loc(f, rid));
    else r = this.service(base, String(namespace), js.spec, (f) => loc(f, rid));
    return this.errors.length === errs ? r : undefined;
  }

  private pod(base: ResourceBase, namespace: string, spec: unknown, loc: (f: string) => ConfigLocation): ModelPod | undefined {
    if (!isObject(spec)) {
      this.fail('NM_ERR_CONFIG_FIELD', loc('spec'), 'spec is required');
      return undefined;
    }
    if (spec.hostNetwork === true) this.fail('NM_ERR_CONFIG_FIELD', loc('spec.hostNetwork'), 'the lab gives every Pod its own network namespace: remove hostNetwork');
    const nodeName = spec.nodeName;
    if (typeof nodeName !== 'string' || nodeName === '') {
      this.fail('NM_ERR_CONFIG_FIELD', loc('spec.nodeName'), 'the lab has no scheduler: set spec.nodeName to one of the Nodes');
    }
    const sa = spec.serviceAccountName ?? 'default';
    if (typeof sa !== 'string' || sa === '') this.fail('NM_ERR_CONFIG_FIELD', loc('spec.serviceAccountName'), 'must be a non-empty string');
    const cs = spec.containers;
    const containers: ModelContainer[] = [];
    if (!Array.isArray(cs) || cs.length === 0) {
      this.fail('NM_ERR_CONFIG_FIELD', loc('spec.containers'), 'at least one container is required');
    } else {
      const names = new Set<string>();
      cs.forEach((c, i) => {
        const f = `spec.containers[${i}]`;
        const cont = this.container(c, f, loc);
        if (!cont) return;
        if (names.has(cont.name)) this.fail('NM_ERR_CONFIG_CONFLICT', loc(`${f}.name`), `container name "${cont.name}" is used twice`);
        names.add(cont.name);
        containers.push(cont);
      });
    }
    return { kind: 'Pod', ...base, namespace, nodeName: String(nodeName), serviceAccountName: String(sa), containers };
  }

  private container(c: unknown, f: string, loc: (f: string) => ConfigLocation): ModelContainer | undefined {
    if (!isObject(c)) {
      this.fail('NM_ERR_CONFIG_FIELD', loc(f), 'a container must be a mapping');
      return undefined;
    }
    if (typeof c.name !== 'string' || !LABEL_NAME.test(c.name)) {
      this.fail('NM_ERR_CONFIG_FIELD', loc(`${f}.name`), 'a container needs a name (lowercase letters, digits and -)');
      return undefined;
    }
    const command = this.stringList(c.command, loc(`${f}.command`));
    const args = c.args === undefined ? [] : this.stringList(c.args, loc(`${f}.args`));
    if (command && command.length === 0) {
      this.fail('NM_ERR_CONFIG_FIELD', loc(`${f}.command`), 'the lab ignores images and runs the command from the host filesystem (cwd = the lab dir): set command, e.g. [node, server.js]');
    }
    const env: ModelContainer['env'] = [];
    if (c.env !== undefined) {
      if (!Array.isArray(c.env)) this.fail('NM_ERR_CONFIG_FIELD', loc(`${f}.env`), 'must be a list of {name, value}');
      else
        c.env.forEach((e, i) => {
          const ef = `${f}.env[${i}]`;
          if (!isObject(e) || typeof e.name !== 'string' || e.name === '') {
            this.fail('NM_ERR_CONFIG_FIELD', loc(`${ef}.name`), 'an env entry needs a name');
            return;
          }
          if (e.value !== undefined) {
            if (typeof e.value !== 'string') this.fail('NM_ERR_CONFIG_FIELD', loc(`${ef}.value`), 'must be a string (quote numbers and booleans)');
            else env.push({ name: e.name, value: e.value });
            return;
          }
          const ref = isObject(e.valueFrom) && isObject(e.valueFrom.fieldRef) ? e.valueFrom.fieldRef.fieldPath : undefined;
          if (typeof ref === 'string' && FIELD_REFS.has(ref)) env.push({ name: e.name, fieldRef: ref as FieldRef });
          else if (e.valueFrom !== undefined) this.fail('NM_ERR_CONFIG_FIELD', loc(`${ef}.valueFrom`), `the lab supports only valueFrom.fieldRef.fieldPath in: ${[...FIELD_REFS].join(', ')}`);
          else env.push({ name: e.name, value: '' });
        });
    }
    const ports: ModelContainer['ports'] = [];
    if (c.ports !== undefined) {
      if (!Array.isArray(c.ports)) this.fail('NM_ERR_CONFIG_FIELD', loc(`${f}.ports`), 'must be a list of {containerPort}');
      else
        c.ports.forEach((p, i) => {
          const pf = `${f}.ports[${i}]`;
          const n = isObject(p) ? p.containerPort : undefined;
          if (!isPort(n)) {
            this.fail('NM_ERR_CONFIG_FIELD', loc(`${pf}.containerPort`), 'must be an integer from 1 to 65535');
            return;
          }
          const protocol = isObject(p) && typeof p.protocol === 'string' ? p.protocol : 'TCP';
          const name = isObject(p) && typeof p.name === 'string' ? p.name : '';
          ports.push({ name, containerPort: n, protocol });
        });
    }
    if (!command) return undefined;
    return {
      name: c.name,
      argv: [...command, ...(args ?? [])],
      env,
      ports,
      tcpPorts: ports.filter((p) => p.protocol === 'TCP').map((p) => p.containerPort),
    };
  }

  private service(base: ResourceBase, namespace: string, spec: unknown, loc: (f: string) => ConfigLocation): ModelService | undefined {
    if (!isObject(spec)) {
      this.fail('NM_ERR_CONFIG_FIELD', loc('spec'), 'spec is required');
      return undefined;
    }
    let clusterIP = '';
    if (spec.clusterIP !== undefined && spec.clusterIP !== '') {
      if (spec.clusterIP === 'None' || (typeof spec.clusterIP === 'string' && isIPv4(spec.clusterIP))) clusterIP = spec.clusterIP;
      else this.fail('NM_ERR_CONFIG_FIELD', loc('spec.clusterIP'), `"${String(spec.clusterIP)}" is not an IPv4 address or None`);
    }
    let selector: Record<string, string> | undefined;
    if (spec.selector !== undefined && spec.selector !== null) selector = this.stringMap(spec.selector, loc('spec.selector'));
    const ports: ModelServicePort[] = [];
    if (!Array.isArray(spec.ports) || spec.ports.length === 0) {
      this.fail('NM_ERR_CONFIG_FIELD', loc('spec.ports'), 'at least one port is required');
    } else {
      spec.ports.forEach((p, i) => {
        const pf = `spec.ports[${i}]`;
        if (!isObject(p) || !isPort(p.port)) {
          this.fail('NM_ERR_CONFIG_FIELD', loc(`${pf}.port`), 'must be an integer from 1 to 65535');
          return;
        }
        const tp = p.targetPort ?? p.port;
        if (!isPort(tp) && !(typeof tp === 'string' && tp !== '')) {
          this.fail('NM_ERR_CONFIG_FIELD', loc(`${pf}.targetPort`), 'must be a port number or a container port name');
          return;
        }
        ports.push({
          name: typeof p.name === 'string' ? p.name : '',
          port: p.port,
          targetPort: tp as number | string,
          protocol: typeof p.protocol === 'string' ? p.protocol : 'TCP',
        });
      });
    }
    return { kind: 'Service', ...base, namespace, clusterIP, allocated: false, selector, ports };
  }

  /** What needs the whole model: node references, implied namespaces, ClusterIPs. */
  crossCheck(model: LabModel): void {
    const nodes = new Set(model.nodes.map((n) => n.name));
    if (model.nodes.length === 0 && model.pods.length > 0) {
      const p = model.pods[0]!;
      this.fail('NM_ERR_CONFIG_FIELD', { file: p.file, line: p.line, resource: `Pod ${p.namespace}/${p.name}`, field: 'spec.nodeName' }, 'no Node is declared: add `apiVersion: v1, kind: Node` documents');
    }
    for (const p of model.pods) {
      if (!nodes.has(p.nodeName) && model.nodes.length > 0) {
        this.fail('NM_ERR_CONFIG_FIELD', { file: p.file, line: p.line, resource: `Pod ${p.namespace}/${p.name}`, field: 'spec.nodeName' }, `no Node "${p.nodeName}" (declared: ${[...nodes].join(', ')})`);
      }
    }
    const declared = new Set(model.namespaces.map((n) => n.name));
    for (const r of [...model.pods, ...model.services]) {
      if (declared.has(r.namespace)) continue;
      declared.add(r.namespace);
      model.namespaces.push({ kind: 'Namespace', name: r.namespace, labels: {}, annotations: {}, file: r.file, line: r.line, declared: false });
    }
    const byIp = new Map<string, ModelService>();
    for (const s of model.services) {
      if (!s.clusterIP || s.clusterIP === 'None') continue;
      const other = byIp.get(s.clusterIP);
      if (other) {
        this.fail('NM_ERR_CONFIG_CONFLICT', { file: s.file, line: s.line, resource: `Service ${s.namespace}/${s.name}`, field: 'spec.clusterIP' }, `${s.clusterIP} is already the clusterIP of Service ${other.namespace}/${other.name}`);
      }
      byIp.set(s.clusterIP, s);
    }
    // deterministic: the lowest free address, in declaration order
    let next = FIRST_ALLOCATED;
    for (const s of model.services) {
      if (s.clusterIP) continue;
      while (next <= LAST_ALLOCATED && byIp.has(intToIp(next))) next++;
      if (next > LAST_ALLOCATED) {
        this.fail('NM_ERR_CONFIG_CONFLICT', { file: s.file, line: s.line, resource: `Service ${s.namespace}/${s.name}`, field: 'spec.clusterIP' }, `${SERVICE_CIDR} is exhausted`);
        return;
      }
      s.clusterIP = intToIp(next++);
      s.allocated = true;
      byIp.set(s.clusterIP, s);
    }
  }

  throwIfAny(): void {
    const [first, ...rest] = this.errors;
    if (!first) return;
    if (rest.length === 0) throw first;
    const more = rest.slice(0, 9).map((e) => `\n  also: ${e.message}`).join('');
    const err = new ConfigError(first.code, first.location, `${first.message.slice(formatLocation(first.location).length + 2)}${more}${rest.length > 9 ? `\n  (and ${rest.length - 9} more)` : ''}`);
    throw err;
  }

  fail(code: ErrorCode, location: ConfigLocation, detail: string): void {
    this.errors.push(new ConfigError(code, location, detail));
  }

  private stringMap(v: unknown, loc: ConfigLocation): Record<string, string> {
    if (v === undefined || v === null) return {};
    if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string')) {
      this.fail('NM_ERR_CONFIG_FIELD', loc, 'must be a map of strings to strings (quote values like "true" or "8080")');
      return {};
    }
    return v as Record<string, string>;
  }

  private stringList(v: unknown, loc: ConfigLocation): string[] | undefined {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      this.fail('NM_ERR_CONFIG_FIELD', loc, 'must be a list of strings');
      return undefined;
    }
    return v as string[];
  }
}

/** The 1-based line of a dotted field path (`spec.ports[0].port`) in a document, if present. */
function lineOf(doc: Document, lc: LineCounter, field: string): number | undefined {
  const keys: (string | number)[] = [];
  for (const part of field.split('.')) {
    const m = /^([^[]+)((?:\[\d+\])*)$/.exec(part);
    if (!m) return undefined;
    keys.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) keys.push(Number(idx[1]));
  }
  for (let n = keys.length; n > 0; n--) {
    const node = doc.getIn(keys.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}

function resourceName(js: Record<string, unknown>): string {
  const md = isObject(js.metadata) ? js.metadata : {};
  const name = typeof md.name === 'string' ? md.name : '(unnamed)';
  return typeof md.namespace === 'string' ? `${md.namespace}/${name}` : name;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

export function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255 && String(Number(p)) === p);
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Does a pod's labels satisfy a Service selector (every key equal)? */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
