// One error family for the whole project, with stable codes users and tests can switch on
// (modelled on undici's UND_ERR_*). Messages say what is wrong, where, and what to do.

export type ErrorCode =
  // configuration (control plane sources and validation)
  | 'NM_ERR_CONFIG_YAML' // a file is not valid YAML
  | 'NM_ERR_CONFIG_KIND' // apiVersion/kind not known
  | 'NM_ERR_CONFIG_FIELD' // a field is missing or has the wrong type/value
  | 'NM_ERR_CONFIG_CONFLICT' // two resources claim the same thing (name, clusterIP...)
  | 'NM_ERR_CONFIG_LIMIT' // a file, a resource or the whole configuration is over a size or count limit
  // datapath (eBPF, addon)
  | 'NM_ERR_BPF' // a libbpf/bpf() call failed (carries errno)
  | 'NM_ERR_CGROUP' // cgroup v2 not found/usable
  | 'NM_ERR_NETNS' // a network namespace could not be entered/read
  // proxy
  | 'NM_ERR_ORIGINAL_DST' // an accepted connection has no original destination
  | 'NM_ERR_UPSTREAM' // the proxy could not reach an upstream (carries an Envoy response flag)
  | 'NM_ERR_ADMIN' // the agent's admin port cannot be set up as asked (trusted networks, token files)
  // lab
  | 'NM_ERR_LAB' // lab set-up or teardown failed
  // control plane connection
  | 'NM_ERR_CONTROL' // the agent cannot reach or use the control plane
  // agent lifecycle
  | 'NM_ERR_HANDOFF' // an agent cannot take over from (or hand over to) the agent before it on its node
  // identity
  | 'NM_ERR_KUBE' // the Kubernetes API server cannot be reached or refuses a request (kubeconfig, RBAC, a conflict)
  | 'NM_ERR_CA' // the CA cannot start, sign or rotate (keys, certificates, CA dir)
  | 'NM_ERR_IDENTITY' // a certificate request is refused, or a certificate is not the SVID asked for
  // installation
  | 'NM_ERR_TELEMETRY' // the agent's telemetry settings (access log, tracing) are not valid
  | 'NM_ERR_INSTALL' // the package's own files (addon, eBPF objects, protos) are missing: not built, or moved
  | 'NM_ERR_CNI_INSTALL'; // the CNI plugin cannot be chained into the node's CNI config (dirs missing, a config that is not JSON)

export class NodemeshError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NodemeshError';
    this.code = code;
  }
}

/** Where a configuration problem is: file, resource and field. */
export interface ConfigLocation {
  file: string;
  /** `Kind namespace/name` (or `Kind name` for cluster-scoped kinds); absent for whole-file errors. */
  resource?: string;
  /** dotted path into the resource, e.g. `spec.ports[0].port` */
  field?: string;
  /** 1-based line in the file, when known */
  line?: number;
}

export class ConfigError extends NodemeshError {
  readonly location: ConfigLocation;
  constructor(code: ErrorCode, location: ConfigLocation, detail: string) {
    super(code, `${formatLocation(location)}: ${detail}`);
    this.name = 'ConfigError';
    this.location = location;
  }
}

export function formatLocation(l: ConfigLocation): string {
  let s = l.line ? `${l.file}:${l.line}` : l.file;
  if (l.resource) s += `: ${l.resource}`;
  if (l.field) s += `: field ${l.field}`;
  return s;
}
