// What a cluster's controllers and kubelets would have made of a set of manifests, for the
// stand-in API server (kube-apiserver.ts): Deployments get their pods (named and owned as the
// ReplicaSet controller names them), every pod an IP, a node and the Running phase, and
// EndpointSlices are kept as the EndpointSlice controller keeps them (syncEndpointSlices).
// The same pods go to the file source, so both sources see the same objects.
import { createHash } from 'node:crypto';
import type { KubeApiServerStandIn, KubeObject } from './kube-apiserver.js';

type Obj = Record<string, any>;

const NODES = ['node-a', 'node-b'];

/** Manifests as a cluster would hold them (first of a kind/namespace/name wins, as the file store). */
export function asCluster(docs: Obj[]): KubeObject[] {
  const out: KubeObject[] = [];
  const seen = new Set<string>();
  let podIndex = 0;
  const add = (o: Obj) => {
    const group = String(o.apiVersion).includes('/') ? String(o.apiVersion).split('/')[0] : '';
    const key = `${group}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(o as KubeObject);
  };
  const placePod = (pod: Obj) => {
    const i = podIndex++;
    pod.spec.nodeName ??= NODES[i % NODES.length];
    pod.status = { phase: 'Running', podIP: `10.244.${NODES.indexOf(pod.spec.nodeName) + 1 || 9}.${10 + i}`, hostIP: `172.18.0.${NODES.indexOf(pod.spec.nodeName) + 2}`, ...(pod.status ?? {}) };
    if (!pod.status.podIP) pod.status.podIP = `10.244.9.${10 + i}`;
    return pod;
  };
  for (const d of docs) {
    if (!d || typeof d !== 'object' || !d.metadata?.name) continue;
    if (d.kind === 'Pod') {
      add(placePod(structuredClone(d)));
    } else if (d.kind === 'Deployment' && d.apiVersion === 'apps/v1') {
      add(d);
      const ns = d.metadata.namespace ?? 'default';
      const template = d.spec?.template ?? {};
      const hash = createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 10).replace(/[0-9]/g, (c) => 'bcdfghjkmn'[Number(c)]!);
      const replicas = d.spec?.replicas ?? 1;
      for (let r = 0; r < replicas; r++) {
        add(
          placePod({
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: {
              name: `${d.metadata.name}-${hash}-${String(r).padStart(5, 'x')}`,
              generateName: `${d.metadata.name}-${hash}-`,
              namespace: ns,
              labels: { ...(template.metadata?.labels ?? {}), 'pod-template-hash': hash },
              ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
              ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${d.metadata.name}-${hash}`, uid: `rs-${hash}`, controller: true }],
            },
            spec: { ...structuredClone(template.spec ?? { containers: [] }) },
          }),
        );
      }
    } else add(d);
  }
  return out;
}

/** The EndpointSlices the controller would keep for `objects` (Services with selectors × their pods). */
export function endpointSlices(objects: readonly Obj[]): KubeObject[] {
  const pods = objects.filter((o) => o.kind === 'Pod');
  const out: KubeObject[] = [];
  for (const svc of objects) {
    if (svc.kind !== 'Service' || !svc.spec?.selector || svc.spec.type === 'ExternalName') continue;
    const ns = svc.metadata.namespace ?? 'default';
    const selector = svc.spec.selector as Record<string, string>;
    // pods grouped by the ports they resolve to: one slice per group, as the controller does
    const groups = new Map<string, { ports: Obj[]; endpoints: Obj[] }>();
    for (const pod of pods) {
      if ((pod.metadata.namespace ?? 'default') !== ns || !pod.status?.podIP) continue;
      if (pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed') continue;
      if (!Object.entries(selector).every(([k, v]) => pod.metadata.labels?.[k] === v)) continue;
      const ports: Obj[] = [];
      for (const sp of svc.spec.ports ?? []) {
        const protocol = sp.protocol ?? 'TCP';
        const target = sp.targetPort ?? sp.port;
        let port: number | undefined = typeof target === 'number' ? target : undefined;
        if (typeof target === 'string') {
          for (const c of pod.spec.containers ?? []) for (const cp of c.ports ?? []) if (cp.name === target && (cp.protocol ?? 'TCP') === protocol) port = cp.containerPort;
        }
        if (port !== undefined) ports.push({ name: sp.name ?? '', port, protocol, ...(sp.appProtocol ? { appProtocol: sp.appProtocol } : {}) });
      }
      const key = JSON.stringify(ports);
      const g = groups.get(key) ?? { ports, endpoints: [] };
      groups.set(key, g);
      const terminating = Boolean(pod.metadata.deletionTimestamp);
      const ready = (pod.status.phase === 'Running' || pod.status.phase === undefined) && !terminating;
      g.endpoints.push({
        addresses: [pod.status.podIP],
        conditions: { ready, serving: pod.status.phase === 'Running' || pod.status.phase === undefined, terminating },
        nodeName: pod.spec.nodeName,
        targetRef: { kind: 'Pod', namespace: ns, name: pod.metadata.name, uid: pod.metadata.uid ?? '' },
      });
    }
    for (const [key, g] of groups) {
      const suffix = createHash('sha256').update(key).digest('hex').slice(0, 5);
      out.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${svc.metadata.name}-${suffix}`,
          namespace: ns,
          labels: { 'kubernetes.io/service-name': svc.metadata.name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
        },
        addressType: 'IPv4',
        ports: g.ports,
        endpoints: g.endpoints,
      });
    }
  }
  return out;
}

/** Brings the stand-in's EndpointSlices up to date with its Services and Pods (only what changed is written). */
export function syncEndpointSlices(api: KubeApiServerStandIn): void {
  const objects = [...api.list('Service'), ...api.list('Pod')];
  const want = endpointSlices(objects);
  const wanted = new Set(want.map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
  for (const s of api.list('EndpointSlice')) if (!wanted.has(`${s.metadata.namespace}/${s.metadata.name}`)) api.remove('EndpointSlice', s.metadata.namespace, s.metadata.name);
  for (const s of want) {
    const have = api.get('EndpointSlice', s.metadata.namespace, s.metadata.name);
    if (have && JSON.stringify([have.ports, have.endpoints]) === JSON.stringify([s.ports, s.endpoints])) continue;
    api.apply(s);
  }
}
