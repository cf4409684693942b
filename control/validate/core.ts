// Validation of the core Kubernetes kinds nodemesh compiles: v1 Namespace, Node, Pod,
// Service, ServiceAccount, and apps/v1 Deployment (checked, not compiled). The rules are
// the subset of Kubernetes' own API validation that the snapshot depends on; fields
// nodemesh does not use (images, volumes, env...) are not looked at.
import { FAIL_MODE_ANNOTATION, MESH_ANNOTATION } from '../api/snapshot.js';
import { podWorkloadName, type OwnerReference } from '../api/workload-name.js';
import type {
  Container,
  ContainerPort,
  DeploymentSpec,
  NamespaceSpec,
  NodeSpec,
  PodSpec,
  Protocol,
  ServicePortSpec,
  ServiceSpec,
  ValidatedBody,
} from '../model/resources.js';
import {
  FieldProblem,
  describeValue,
  integer,
  metadata,
  object,
  oneOf,
  optArray,
  optBoolean,
  optObject,
  optString,
  string,
  stringList,
  stringMap,
  type Obj,
} from './fields.js';
import { dns1035Label, dns1123Label, dns1123Subdomain, ianaServiceName, ipv4, optIp } from './names.js';

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export function validateNamespace(o: Obj, name: string): ValidatedBody {
  dns1123Label(name, ['metadata', 'name']);
  const m = metadata(o);
  const spec: NamespaceSpec = { labels: stringMap(m.labels, ['metadata', 'labels']), annotations: stringMap(m.annotations, ['metadata', 'annotations']) };
  const notes = meshValueNotes(spec.labels[MESH_ANNOTATION], 'label');
  for (const [where, map] of [['annotation', spec.annotations], ['label', spec.labels]] as const) {
    const v = map[FAIL_MODE_ANNOTATION];
    if (v !== undefined && v !== 'open' && v !== 'closed') notes.push(`${where} ${FAIL_MODE_ANNOTATION}=${JSON.stringify(v)} is neither "open" nor "closed": the namespace fails closed`);
  }
  return { body: { kind: 'Namespace', spec }, notes };
}

export function validateNode(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const status = optObject(o.status, ['status']) ?? {};
  const internalIps: string[] = [];
  optArray(status.addresses, ['status', 'addresses']).forEach((a, i) => {
    const at = ['status', 'addresses', i];
    const addr = object(a, at);
    const type = string(addr.type, [...at, 'type']);
    const ip = string(addr.address, [...at, 'address']);
    if (type === 'InternalIP') internalIps.push(optIp(ip, [...at, 'address']));
  });
  const spec: NodeSpec = { labels: stringMap(metadata(o).labels, ['metadata', 'labels']), internalIps };
  return { body: { kind: 'Node', spec }, notes: [] };
}

export function validatePod(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const m = metadata(o);
  const s = object(o.spec, ['spec']);
  const status = optObject(o.status, ['status']) ?? {};
  const serviceAccountName = optString(s.serviceAccountName, ['spec', 'serviceAccountName']) || 'default';
  dns1123Subdomain(serviceAccountName, ['spec', 'serviceAccountName']);
  const spec: PodSpec = {
    labels: stringMap(m.labels, ['metadata', 'labels']),
    annotations: stringMap(m.annotations, ['metadata', 'annotations']),
    nodeName: optString(s.nodeName, ['spec', 'nodeName']) ?? '',
    serviceAccountName,
    hostNetwork: optBoolean(s.hostNetwork, ['spec', 'hostNetwork']) ?? false,
    containers: containers(s.containers, ['spec', 'containers']),
    podIP: optIp(status.podIP, ['status', 'podIP']),
    hostIP: optIp(status.hostIP, ['status', 'hostIP']),
    phase: oneOf(status.phase, ['status', 'phase'], ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown']),
    terminating: m.deletionTimestamp !== undefined && m.deletionTimestamp !== null,
    workloadName: '',
  };
  spec.workloadName = podWorkloadName({ name, generateName: optString(m.generateName, ['metadata', 'generateName']), ownerReferences: ownerReferences(m.ownerReferences), labels: spec.labels });
  const notes = meshValueNotes(spec.annotations[MESH_ANNOTATION], 'annotation');
  if (spec.hostNetwork && spec.annotations[MESH_ANNOTATION] === 'enabled')
    notes.push('a hostNetwork pod shares its node\'s network namespace and is never meshed');
  return { body: { kind: 'Pod', spec }, notes };
}

/** The owners a workload name is read from; each must be an object with kind and name strings. */
function ownerReferences(v: unknown): OwnerReference[] {
  return optArray(v, ['metadata', 'ownerReferences']).map((r, i) => {
    const at = ['metadata', 'ownerReferences', i];
    const o = object(r, at);
    return { kind: string(o.kind, [...at, 'kind']), name: string(o.name, [...at, 'name']), controller: optBoolean(o.controller, [...at, 'controller']) ?? false };
  });
}

export function validateService(o: Obj, name: string): ValidatedBody {
  dns1035Label(name, ['metadata', 'name']);
  const s = optObject(o.spec, ['spec']) ?? {};
  const type = oneOf(s.type, ['spec', 'type'], ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'], 'ClusterIP');
  const rawIp = optString(s.clusterIP, ['spec', 'clusterIP']);
  let clusterIP: string | undefined;
  if (rawIp === 'None') clusterIP = 'None';
  else if (rawIp !== undefined && rawIp !== '') clusterIP = ipv4(rawIp, ['spec', 'clusterIP'], ' or "None" (headless), or no clusterIP to have one allocated');
  if (clusterIP === 'None' && type !== 'ClusterIP')
    throw new FieldProblem(['spec', 'clusterIP'], `"None" (headless) requires type ClusterIP, not ${type}`);
  if (type === 'ExternalName') string(s.externalName, ['spec', 'externalName']);
  const selector = stringMap(s.selector, ['spec', 'selector']);
  const ports = servicePorts(s.ports, clusterIP === 'None' || type === 'ExternalName');
  const m = metadata(o);
  const status = optObject(o.status, ['status']) ?? {};
  const lb = optObject(status.loadBalancer, ['status', 'loadBalancer']) ?? {};
  const loadBalancerIps: string[] = [];
  optArray(lb.ingress, ['status', 'loadBalancer', 'ingress']).forEach((e, i) => {
    const at = ['status', 'loadBalancer', 'ingress', i];
    const ip = optString(object(e, at).ip, [...at, 'ip']);
    if (ip) loadBalancerIps.push(optIp(ip, [...at, 'ip']));
  });
  const spec: ServiceSpec = {
    labels: stringMap(m.labels, ['metadata', 'labels']),
    annotations: stringMap(m.annotations, ['metadata', 'annotations']),
    externalIps: stringList(s.externalIPs, ['spec', 'externalIPs']).map((ip, i) => optIp(ip, ['spec', 'externalIPs', i])),
    loadBalancerIps,
    type,
    // "selector: {}" is no selector: Kubernetes drops empty maps, and the endpoints
    // controller ignores Services without a selector.
    selector: Object.keys(selector).length > 0 ? selector : undefined,
    clusterIP,
    ports,
  };
  const notes: string[] = [];
  if (type === 'ExternalName') notes.push('ExternalName Services are DNS aliases; nodemesh does not proxy them');
  return { body: { kind: 'Service', spec }, notes };
}

function servicePorts(v: unknown, portsOptional: boolean): ServicePortSpec[] {
  const path = ['spec', 'ports'];
  const list = optArray(v, path);
  if (list.length === 0 && !portsOptional)
    throw new FieldProblem(path, 'expected at least one port (e.g. `ports: [{port: 80, targetPort: 8080}]`)');
  const names = new Set<string>();
  const numbers = new Set<string>();
  return list.map((p, i) => {
    const at = ['spec', 'ports', i];
    const o = object(p, at);
    const name = optString(o.name, [...at, 'name']) ?? '';
    if (name === '' && list.length > 1) throw new FieldProblem([...at, 'name'], 'is required when a Service has more than one port');
    if (name !== '') {
      dns1123Label(name, [...at, 'name']);
      if (names.has(name)) throw new FieldProblem([...at, 'name'], `duplicate port name ${JSON.stringify(name)}`);
      names.add(name);
    }
    const port = integer(o.port, [...at, 'port'], 1, 65535);
    const protocol = oneOf(o.protocol, [...at, 'protocol'], PROTOCOLS, 'TCP');
    // as Kubernetes: a port number may repeat with another protocol (DNS on 53/TCP and 53/UDP)
    if (numbers.has(`${port}/${protocol}`)) throw new FieldProblem([...at, 'port'], `duplicate port ${port}/${protocol}`);
    numbers.add(`${port}/${protocol}`);
    return {
      name,
      port,
      targetPort: targetPort(o.targetPort, [...at, 'targetPort']),
      protocol,
      appProtocol: optString(o.appProtocol, [...at, 'appProtocol']) ?? '',
    };
  });
}

function targetPort(v: unknown, path: (string | number)[]): number | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return integer(v, path, 1, 65535);
  if (typeof v === 'string') {
    if (/^[0-9]+$/.test(v)) throw new FieldProblem(path, `${JSON.stringify(v)} is a quoted number: write it unquoted (${v}), or use a container port name`);
    return ianaServiceName(v, path);
  }
  throw new FieldProblem(path, `expected a port number 1-65535 or a container port name, found ${describeValue(v)}`);
}

export function validateServiceAccount(_o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  return { body: { kind: 'ServiceAccount' }, notes: [] };
}

export function validateDeployment(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const s = object(o.spec, ['spec']);
  const selector = object(s.selector, ['spec', 'selector']);
  const matchLabels = stringMap(selector.matchLabels, ['spec', 'selector', 'matchLabels']);
  const template = object(s.template, ['spec', 'template']);
  const tmeta = optObject(template.metadata, ['spec', 'template', 'metadata']) ?? {};
  const templateLabels = stringMap(tmeta.labels, ['spec', 'template', 'metadata', 'labels']);
  stringMap(tmeta.annotations, ['spec', 'template', 'metadata', 'annotations']);
  for (const [k, v] of Object.entries(matchLabels)) {
    if (templateLabels[k] !== v)
      throw new FieldProblem(['spec', 'template', 'metadata', 'labels'], `does not match spec.selector.matchLabels (${k}=${v}): the Deployment would select none of its own pods`);
  }
  const tspec = object(template.spec, ['spec', 'template', 'spec']);
  const spec: DeploymentSpec = { templateLabels, containers: containers(tspec.containers, ['spec', 'template', 'spec', 'containers']) };
  return {
    body: { kind: 'Deployment', spec },
    notes: ['checked only: nodemesh does not create pods from a Deployment; the lab (or Kubernetes) runs them and they reach nodemesh as Pods'],
  };
}

function containers(v: unknown, path: (string | number)[]): Container[] {
  const list = optArray(v, path);
  if (list.length === 0) throw new FieldProblem(path, 'expected at least one container');
  const containerNames = new Set<string>();
  const portNames = new Set<string>();
  return list.map((c, i) => {
    const at = [...path, i];
    const o = object(c, at);
    const name = dns1123Label(string(o.name, [...at, 'name']), [...at, 'name']);
    if (containerNames.has(name)) throw new FieldProblem([...at, 'name'], `duplicate container name ${JSON.stringify(name)}`);
    containerNames.add(name);
    const ports: ContainerPort[] = optArray(o.ports, [...at, 'ports']).map((p, j) => {
      const pat = [...at, 'ports', j];
      const po = object(p, pat);
      const pname = optString(po.name, [...pat, 'name']) ?? '';
      if (pname !== '') {
        ianaServiceName(pname, [...pat, 'name']);
        if (portNames.has(pname)) throw new FieldProblem([...pat, 'name'], `duplicate port name ${JSON.stringify(pname)} in this pod`);
        portNames.add(pname);
      }
      return {
        containerPort: integer(po.containerPort, [...pat, 'containerPort'], 1, 65535),
        name: pname,
        protocol: oneOf(po.protocol, [...pat, 'protocol'], PROTOCOLS, 'TCP'),
      };
    });
    return { name, ports, command: stringList(o.command, [...at, 'command']), args: stringList(o.args, [...at, 'args']) };
  });
}

function meshValueNotes(value: string | undefined, where: 'label' | 'annotation'): string[] {
  if (value === undefined || value === 'enabled' || value === 'disabled') return [];
  const then = where === 'annotation' ? 'the namespace label decides' : 'pods are not meshed unless annotated';
  return [`${where} ${MESH_ANNOTATION}=${JSON.stringify(value)} is neither "enabled" nor "disabled": ${then}`];
}
