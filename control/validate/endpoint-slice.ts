// Validation of discovery.k8s.io/v1 EndpointSlice, the subset the compiler reads: the
// Service it belongs to (label kubernetes.io/service-name), its ports and its endpoints'
// addresses, conditions, node and Pod. The rules are the API server's own for those fields.
import type { EndpointSliceSpec, Protocol, SliceEndpoint, ValidatedBody } from '../model/resources.js';
import { FieldProblem, integer, metadata, object, oneOf, optArray, optBoolean, optObject, optString, requiredOneOf, stringList, stringMap, type Obj } from './fields.js';
import { dns1123Subdomain, ianaServiceName, optIp } from './names.js';

/** The label that ties a slice to its Service (set by the EndpointSlice controller, or by hand for a Service without selector). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export function validateEndpointSlice(o: Obj, name: string): ValidatedBody {
  dns1123Subdomain(name, ['metadata', 'name']);
  const m = metadata(o);
  const labels = stringMap(m.labels, ['metadata', 'labels']);
  const addressType = requiredOneOf(o.addressType, ['addressType'], ['IPv4', 'IPv6', 'FQDN'] as const);
  const ports = optArray(o.ports, ['ports']).map((p, i) => {
    const at = ['ports', i];
    const port = object(p, at);
    const portName = optString(port.name, [...at, 'name']) ?? '';
    if (portName) ianaServiceName(portName, [...at, 'name']);
    return {
      name: portName,
      port: integer(port.port, [...at, 'port'], 1, 65535),
      protocol: oneOf(port.protocol, [...at, 'protocol'], PROTOCOLS, 'TCP'),
      appProtocol: optString(port.appProtocol, [...at, 'appProtocol']) ?? '',
    };
  });
  const endpoints = optArray(o.endpoints, ['endpoints']).map((e, i): SliceEndpoint => {
    const at = ['endpoints', i];
    const ep = object(e, at);
    const addresses = stringList(ep.addresses, [...at, 'addresses']);
    if (addresses.length === 0) throw new FieldProblem([...at, 'addresses'], 'an endpoint needs at least one address');
    if (addressType !== 'FQDN') addresses.forEach((a, j) => optIp(a, [...at, 'addresses', j]));
    const cond = optObject(ep.conditions, [...at, 'conditions']) ?? {};
    const ready = optBoolean(cond.ready, [...at, 'conditions', 'ready']) ?? true;
    const ref = optObject(ep.targetRef, [...at, 'targetRef']);
    const refKind = ref ? optString(ref.kind, [...at, 'targetRef', 'kind']) : undefined;
    const refName = ref ? optString(ref.name, [...at, 'targetRef', 'name']) : undefined;
    const refNs = (ref ? optString(ref.namespace, [...at, 'targetRef', 'namespace']) : undefined) ?? (m.namespace as string | undefined) ?? 'default';
    return {
      addresses,
      ready,
      serving: optBoolean(cond.serving, [...at, 'conditions', 'serving']) ?? ready,
      terminating: optBoolean(cond.terminating, [...at, 'conditions', 'terminating']) ?? false,
      nodeName: optString(ep.nodeName, [...at, 'nodeName']) ?? '',
      pod: refKind === 'Pod' && refName ? `${refNs}/${refName}` : '',
    };
  });
  const spec: EndpointSliceSpec = { serviceName: labels[SERVICE_NAME_LABEL] ?? '', addressType, ports, endpoints };
  const notes = spec.serviceName ? [] : [`no label ${SERVICE_NAME_LABEL}: the slice belongs to no Service and is not used`];
  return { body: { kind: 'EndpointSlice', spec }, notes };
}
