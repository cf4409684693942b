// Kubernetes and Istio YAML for tests, through the real control-plane path: YAML text →
// parse → validation (store) → compiler → the snapshot, then the agent's policy index. Pods
// and security resources are built here; the rest is written as YAML where it is used.
import { parseYamlFile } from '../../control/source/files.js';
import { ResourceStore, type StoreResult } from '../../control/config-store.js';
import { compileSnapshot } from '../../control/compile/compiler.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import type { Resource } from '../../control/model/resources.js';
import { SecurityIndex, type WorkloadPolicy } from '../../agent/policy/authorization.js';

export interface PodOpts {
  ns?: string;
  labels?: Record<string, string>;
  sa?: string;
  ip?: string;
  node?: string;
}

let nextIp = 0;
const autoIp = () => `10.244.${Math.floor(nextIp / 250) % 250}.${(nextIp++ % 250) + 2}`;

/** A running Pod as YAML (status filled in as the lab writes it). */
export function podYaml(name: string, o: PodOpts = {}): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: ${o.ns ?? 'default'}
  labels: ${JSON.stringify(o.labels ?? {})}
spec:
  nodeName: ${o.node ?? 'node-a'}
  serviceAccountName: ${o.sa ?? 'default'}
  containers:
  - name: main
status:
  phase: Running
  podIP: ${o.ip ?? autoIp()}
`;
}

/** The resources in force from YAML documents (one text joined with ---, or a list); throws if any is rejected. */
export function resourcesOf(yaml: string | string[], file?: string): Resource[] {
  const r = store(Array.isArray(yaml) ? yaml.join('---\n') : yaml, file);
  const rejected = [...r.statuses.filter((s) => s.state !== 'Accepted').map((s) => s.message), ...r.fileErrors.map((e) => e.message)];
  if (rejected.length > 0) throw new Error(`rejected: ${rejected.join('\n')}`);
  return r.resources;
}

/** Validates and compiles YAML documents (as for resourcesOf); throws if any is rejected. */
export function compileYaml(yaml: string | string[], opts: { rootNamespace?: string } = {}): Snapshot {
  return compileSnapshot(resourcesOf(yaml), opts);
}

/**
 * What goes under `spec:`: YAML text, its lines after the first indented by two spaces, or an
 * object (written as JSON, which YAML reads as it is).
 */
export type Spec = string | Record<string, unknown>;
const specYaml = (spec: Spec) => (typeof spec === 'string' ? spec : JSON.stringify(spec));

/** An AuthorizationPolicy as YAML. */
export function authorizationPolicy(namespace: string, name: string, spec: Spec, apiVersion = 'security.istio.io/v1'): string {
  return `apiVersion: ${apiVersion}
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  ${specYaml(spec)}
`;
}

/** A PeerAuthentication as YAML, created at `created` if given. */
export function peerAuthentication(namespace: string, name: string, spec: Spec, created?: string): string {
  return `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: ${name}
  namespace: ${namespace}${created ? `\n  creationTimestamp: "${created}"` : ''}
spec:
  ${specYaml(spec)}
`;
}

/** The store's verdict on YAML documents (statuses name file, resource and field). */
export function store(yaml: string, file = 'policy.yaml'): StoreResult {
  const parsed = parseYamlFile(file, yaml);
  if ('error' in parsed) throw parsed.error;
  return new ResourceStore().apply({ files: [{ file, documents: parsed.documents, documentErrors: parsed.documentErrors }] });
}

/** The agent's view of one workload's policy. */
export function policyOf(snapshot: Snapshot, uid: string): WorkloadPolicy {
  return SecurityIndex.of(snapshot.security).forWorkload(uid);
}

export function spiffe(ns: string, sa: string): string {
  return `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
}
