// What analysis says: one message per finding, with the code an Istio user already knows
// where Istio's analyzers (istioctl analyze, pkg/config/analysis/msg/messages.yaml) have one
// for the same mistake, and a nodemesh code (NM0xxx) for what Istio does not check or
// nodemesh alone can tell (a field it does not apply). Levels are Istio's for its codes: an
// Error means traffic will fail or a resource is not taken, and makes `nodemesh analyze`
// and `nodemesh config status` exit 1.
//
// Istio's IST0104 (GatewayPortNotOnWorkload) is retired upstream and nodemesh runs no
// gateways, so it has no counterpart here.

export type Level = 'Error' | 'Warning' | 'Info';

export interface AnalysisMessage {
  /** `IST0101`, `NM0101` */
  code: string;
  /** `ReferencedResourceNotFound` */
  name: string;
  level: Level;
  /** `VirtualService default/reviews`; a file for a file that could not be read */
  resource: string;
  file?: string;
  line?: number;
  /** `spec.http[0].route[1].destination.subset` */
  field?: string;
  message: string;
  /** what to do about it */
  fix: string;
}

interface CodeInfo {
  name: string;
  level: Level;
  /** one line for `nodemesh analyze --list-codes` and the README */
  about: string;
}

export const CODES = {
  IST0101: { name: 'ReferencedResourceNotFound', level: 'Error', about: 'a route sends traffic to a host or subset that does not exist' },
  IST0106: { name: 'SchemaValidationError', level: 'Error', about: 'the resource is invalid and rejected (every error of it, with its field)' },
  IST0108: { name: 'UnknownAnnotation', level: 'Warning', about: 'a nodemesh.io/ annotation nodemesh does not know (a typo is a silent no-op)' },
  IST0109: { name: 'ConflictingMeshGatewayVirtualServiceHosts', level: 'Error', about: 'two VirtualServices for the mesh name the same host: only the oldest applies' },
  IST0127: { name: 'NoMatchingWorkloadsFound', level: 'Warning', about: 'a policy selector matches no pod' },
  IST0128: { name: 'NoServerCertificateVerificationDestinationLevel', level: 'Warning', about: 'DestinationRule TLS SIMPLE/MUTUAL without caCertificates' },
  IST0129: { name: 'NoServerCertificateVerificationPortLevel', level: 'Warning', about: 'the same, on a port-level traffic policy' },
  IST0130: { name: 'VirtualServiceUnreachableRule', level: 'Warning', about: 'an http rule after a rule that matches every request is never used' },
  IST0131: { name: 'VirtualServiceIneffectiveMatch', level: 'Info', about: 'an http match repeats a match of an earlier rule' },
  IST0173: { name: 'DestinationRuleSubsetNotSelectPods', level: 'Error', about: 'a subset selects no pod of its Service: requests sent there fail (503 UH)' },
  IST0174: { name: 'UnknownDestinationRuleHost', level: 'Warning', about: 'a DestinationRule host is no Service' },
  NM0100: { name: 'Note', level: 'Info', about: 'what nodemesh does with an accepted resource that is worth knowing' },
  NM0101: { name: 'RouteWeightsNotHundred', level: 'Warning', about: 'the weights of a VirtualService route do not sum to 100' },
  NM0102: { name: 'RouteHostNotAService', level: 'Warning', about: 'a VirtualService host or a route parent resolves to no Service: nothing is applied for it' },
  NM0103: { name: 'StrictPortNotListened', level: 'Warning', about: 'a PeerAuthentication port-level mode names a port no selected workload listens on' },
  NM0104: { name: 'AllowPolicyWithoutRules', level: 'Warning', about: 'an ALLOW AuthorizationPolicy with rules written empty denies every request' },
  NM0105: { name: 'FieldNotApplied', level: 'Warning', about: 'a field or kind nodemesh accepts but does not apply' },
  NM0106: { name: 'RouteToEmptySubset', level: 'Error', about: 'a route sends traffic to a subset that selects no pod: it fails (503 UH)' },
  NM0107: { name: 'PodPortProtocolConflict', level: 'Warning', about: 'two Services declare one pod port HTTP and TCP: the destination serves it as one of them' },
} as const satisfies Record<string, CodeInfo>;

export type Code = keyof typeof CODES;

export const LEVEL_ORDER: Record<Level, number> = { Error: 0, Warning: 1, Info: 2 };

export function countLevels(messages: readonly AnalysisMessage[]): { errors: number; warnings: number; infos: number } {
  let errors = 0,
    warnings = 0,
    infos = 0;
  for (const m of messages) {
    if (m.level === 'Error') errors++;
    else if (m.level === 'Warning') warnings++;
    else infos++;
  }
  return { errors, warnings, infos };
}

/** istioctl analyze's line: `Error [IST0101] (VirtualService default/reviews deploy/x.yaml:12) …`. */
export function formatMessage(m: AnalysisMessage): string {
  const where = m.file ? ` ${m.file}${m.line ? `:${m.line}` : ''}` : '';
  const field = m.field ? `field ${m.field}: ` : '';
  return `${m.level} [${m.code}] (${m.resource}${where}) ${field}${m.message}\n    fix: ${m.fix}`;
}
