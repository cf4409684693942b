// The control plane's --config-dir: the user's files, each under its own name, completed
// with what the API server would have filled in (the lab is the API server here):
//   Pod      metadata.namespace, status.phase Running, podIP(s), hostIP(s), Ready condition
//   Service  metadata.namespace, spec.clusterIP(s) when the lab allocated it, and an east-west
//            gateway's status.loadBalancer.ingress (two-cluster labs)
//   Node     spec.podCIDR(s), status.addresses (InternalIP, Hostname)
//   Namespace  one per namespace used but not declared (_lab-namespaces.yaml)
// Documents of other kinds (Istio, Gateway API…) are copied through with their values as
// written (comments and layout are not kept in a file the lab completes); a file with none
// of the four kinds above is copied byte for byte, so its line numbers hold.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import type { LabModel, ModelDocument } from './lab-model.js';
import type { LabState } from './lab-state.js';
import { gatewayAddressOf } from './lab-gateway.js';

export const IMPLIED_NAMESPACES_FILE = '_lab-namespaces.yaml';

export async function writeConfigDir(state: LabState, model: LabModel): Promise<void> {
  await mkdir(state.configDir, { recursive: true });
  for (const f of model.files) {
    const text = f.documents.some((d) => d.resource) ? f.documents.map((d) => `---\n${stringify(completed(d, state))}`).join('') : f.text;
    await writeFile(path.join(state.configDir, f.name), text);
  }
  const implied = model.namespaces.filter((n) => !n.declared);
  if (implied.length > 0) {
    const docs = implied.map((n) => stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n.name }, status: { phase: 'Active' } }));
    await writeFile(path.join(state.configDir, IMPLIED_NAMESPACES_FILE), '# written by nodemesh lab: namespaces used but not declared\n' + docs.map((d) => `---\n${d}`).join(''));
  }
}

/** The document as the API server would serve it (a copy; the model is not changed). */
function completed({ source, resource: r }: ModelDocument, state: LabState): Record<string, unknown> {
  const doc = structuredClone(source.object);
  const set = (key: 'metadata' | 'spec' | 'status', fields: Record<string, unknown>) => {
    doc[key] = { ...((doc[key] as Record<string, unknown> | null | undefined) ?? {}), ...fields };
  };
  if (r?.kind === 'Pod') {
    const pod = state.pods.find((p) => p.namespace === r.namespace && p.name === r.name)!;
    const node = state.nodes.find((n) => n.name === pod.node)!;
    set('metadata', { namespace: r.namespace });
    doc.status = {
      phase: 'Running',
      podIP: pod.ip,
      podIPs: [{ ip: pod.ip }],
      hostIP: node.ip,
      hostIPs: [{ ip: node.ip }],
      conditions: [
        { type: 'Ready', status: 'True' },
        { type: 'ContainersReady', status: 'True' },
      ],
    };
  } else if (r?.kind === 'Service') {
    set('metadata', { namespace: r.namespace });
    if (r.allocated) set('spec', { clusterIP: r.clusterIP, clusterIPs: [r.clusterIP] });
    // a two-cluster lab's east-west gateway: the address its LoadBalancer stand-in holds (lab-gateway.ts)
    const address = gatewayAddressOf(state, r.namespace, r.name);
    if (address) doc.status = { loadBalancer: { ingress: [{ ip: address }] } };
  } else if (r?.kind === 'Node') {
    const node = state.nodes.find((n) => n.name === r.name)!;
    set('spec', { podCIDR: node.podCidr, podCIDRs: [node.podCidr] });
    set('status', { addresses: [
      { type: 'InternalIP', address: node.ip },
      { type: 'Hostname', address: node.name },
    ] });
  }
  return doc;
}
