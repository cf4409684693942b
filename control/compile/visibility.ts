// Istio's Service visibility by namespace (issue 13): the annotation
// `networking.istio.io/exportTo` on a Service lists who sees it — "*" every namespace, "." its
// own, "~" none, or namespace names — comma-separated. Absent: every namespace (Istio's
// default, MeshConfig defaultServiceExportTo "*").
//
// What it gives in the snapshot: `Service.exportTo`, the namespaces resolved ("." → the
// Service's own), comma-joined and sorted; "~" when none; absent when every namespace sees
// it, so a mesh without the annotation gets the snapshot it got before. The node proxy takes
// a source pod outside the list as Istio's sidecar would, whose configuration then holds no
// such Service: the ClusterIP is an unknown destination for that pod (agent/state/proxy-state.ts).
// As Istio says of exportTo, it scopes configuration; it is no security boundary
// (AuthorizationPolicy is).
import { EXPORT_TO_ANNOTATION } from './multicluster.js';
import type { Svc } from './endpoints.js';

/** Who sees `s` in the snapshot's form: undefined (every namespace), "~" (none), or "a,b". */
export function serviceExportTo(s: Svc): string | undefined {
  const raw = s.spec.annotations[EXPORT_TO_ANNOTATION];
  if (raw === undefined) return undefined;
  const entries = raw.split(',').map((e) => e.trim()).filter(Boolean);
  if (entries.length === 0 || entries.includes('*')) return undefined;
  const namespaces = new Set<string>();
  for (const e of entries) {
    if (e === '~') continue;
    namespaces.add(e === '.' ? s.namespace : e);
  }
  return namespaces.size === 0 ? '~' : [...namespaces].sort().join(',');
}
