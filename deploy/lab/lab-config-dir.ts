// The control plane's --config-dir: the user's files, each under its own name, completed
// with what the API server would have filled in (the lab is the API server here):
//   Pod      metadata.namespace, status.phase Running, podIP(s), hostIP(s), Ready condition
//   Service  metadata.namespace, spec.clusterIP(s) when the lab allocated it
//   Node     spec.podCIDR(s), status.addresses (InternalIP, Hostname)
//   Namespace  one per namespace used but not declared (_lab-namespaces.yaml)
// Documents of other kinds (Istio, Gateway API…) are copied through as written; a file
// with none of the four kinds above is copied byte for byte, so its line numbers hold.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify, type Document } from 'yaml';
import type { LabModel, ModelResource } from './lab-model.js';
import type { LabState } from './lab-state.js';

export const IMPLIED_NAMESPACES_FILE = '_lab-namespaces.yaml';

export async function writeConfigDir(state: LabState, model: LabModel): Promise<void> {
  await mkdir(state.configDir, { recursive: true });
  for (const f of model.files) {
    const text = f.documents.some((d) => d.resource) ? f.documents.map((d) => completed(d.doc, d.resource, state)).join('') : f.text;
    await writeFile(path.join(state.configDir, f.name), text);
  }
  const implied = model.namespaces.filter((n) => !n.declared);
  if (implied.length > 0) {
    const docs = implied.map((n) => stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n.name }, status: { phase: 'Active' } }));
    await writeFile(path.join(state.configDir, IMPLIED_NAMESPACES_FILE), '# written by nodemesh lab: namespaces used but not declared\n' + docs.map((d) => `---\n${d}`).join(''));
  }
}

function completed(original: Document, r: ModelResource | undefined, state: LabState): string {
  if (!r) return `---\n${original.toString()}`;
  const doc = original.clone();
  if (r.kind === 'Pod') {
    const pod = state.pods.find((p) => p.namespace === r.namespace && p.name === r.name)!;
    const node = state.nodes.find((n) => n.name === pod.node)!;
    doc.setIn(['metadata', 'namespace'], r.namespace);
    doc.setIn(['status'], doc.createNode({
      phase: 'Running',
      podIP: pod.ip,
      podIPs: [{ ip: pod.ip }],
      hostIP: node.ip,
      hostIPs: [{ ip: node.ip }],
      conditions: [
        { type: 'Ready', status: 'True' },
        { type: 'ContainersReady', status: 'True' },
      ],
    }));
  } else if (r.kind === 'Service') {
    doc.setIn(['metadata', 'namespace'], r.namespace);
    if (r.allocated) {
      doc.setIn(['spec', 'clusterIP'], r.clusterIP);
      doc.setIn(['spec', 'clusterIPs'], doc.createNode([r.clusterIP]));
    }
  } else if (r.kind === 'Node') {
    const node = state.nodes.find((n) => n.name === r.name)!;
    doc.setIn(['spec', 'podCIDR'], node.podCidr);
    doc.setIn(['spec', 'podCIDRs'], doc.createNode([node.podCidr]));
    doc.setIn(['status', 'addresses'], doc.createNode([
      { type: 'InternalIP', address: node.ip },
      { type: 'Hostname', address: node.name },
    ]));
  }
  return `---\n${doc.toString()}`;
}
