// The command table: every `nodemesh` command, its flags and an example. main.ts dispatches
// through it, and `--help` on each command, the top-level usage and the suggestions for a
// mistyped command or flag are generated from it (command-table.ts).
import { AGENT_PORTS, CONTROL_PORTS } from '../common/ports.js';
import { OUTPUT_FLAG, outputFormat, UsageError, type Command, type Flag, type Values } from './command-table.js';

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const NAME: Flag = { name: 'name', type: 'string', value: 'LAB', help: 'the lab (default "lab")' };
const TOKEN: Flag = { name: 'token-file', type: 'string', value: 'FILE', env: 'NODEMESH_ADMIN_TOKEN_FILE', help: "the agents' admin token, where their admin port is not open to this host" };
const CONTROL: Flag = { name: 'control', type: 'string', value: 'HOST:PORT', env: 'NODEMESH_CONTROL_ADMIN', help: `the control plane's admin address (port ${CONTROL_PORTS.admin}); default: the lab's` };
const AGENT: Flag = { name: 'agent', type: 'string', multiple: true, value: 'HOST:PORT', help: `an agent's admin address (port ${AGENT_PORTS.admin}); default: the agents the control plane knows, or the lab's` };

export const COMMANDS: Command[] = [
  {
    words: ['control'],
    summary: `run the control plane (gRPC+TLS and the CA on ${CONTROL_PORTS.grpc}, admin on ${CONTROL_PORTS.admin}) over a directory of YAML or the Kubernetes API`,
    parse: 'delegate',
    flags: [
      { name: 'config-dir', type: 'string', value: 'DIR', env: 'NODEMESH_CONFIG_DIR', help: 'the YAML to serve (read recursively, watched)' },
      { name: 'source', type: 'string', value: 'files|kubernetes', default: 'files', env: 'NODEMESH_SOURCE', help: 'where resources come from: --config-dir, or the API server' },
      { name: 'kubeconfig', type: 'string', value: 'FILE', env: 'NODEMESH_KUBECONFIG', help: 'with --source kubernetes outside a cluster (default: in-cluster)' },
      { name: 'agent-service-account', type: 'string', multiple: true, value: 'NS/NAME', help: "the agents' ServiceAccount, whose tokens the CA accepts (TokenReview)" },
      { name: 'grpc', type: 'string', value: 'HOST:PORT', default: `0.0.0.0:${CONTROL_PORTS.grpc}`, help: 'discovery and CA (gRPC over TLS)' },
      { name: 'admin', type: 'string', value: 'HOST:PORT', default: `0.0.0.0:${CONTROL_PORTS.admin}`, help: '/metrics, /healthz/ready, /debug/config_status' },
      { name: 'trust-domain', type: 'string', value: 'TD', default: 'cluster.local', help: 'the SPIFFE trust domain' },
      { name: 'trust-domain-alias', type: 'string', multiple: true, value: 'TD', help: "a trust domain that is one with --trust-domain (Istio's trustDomainAliases): its principals match, its peers are accepted" },
      { name: 'cluster', type: 'string', value: 'NAME', default: 'Kubernetes', env: 'NODEMESH_CLUSTER', help: "this cluster's name (Istio's cluster ID): metrics' source_cluster and destination_cluster" },
      { name: 'network', type: 'string', value: 'NAME', env: 'NODEMESH_NETWORK', help: "this cluster's network (Istio's topology.istio.io/network; default: one flat network)" },
      { name: 'remote-cluster', type: 'string', multiple: true, value: 'NAME=DIR[,network=NET]', help: "a remote cluster's YAML: its pods, Services, Nodes and east-west gateway join the snapshot" },
      { name: 'remote-cluster-timeout', type: 'string', value: 'DURATION', default: '30s', env: 'NODEMESH_REMOTE_CLUSTER_TIMEOUT', help: "how long the first snapshot waits for the remote clusters to be listed (istiod's PILOT_REMOTE_CLUSTER_TIMEOUT; 0: no wait)" },
      { name: 'ca-dir', type: 'string', value: 'DIR', env: 'NODEMESH_CA_DIR', help: 'the CA state (its root is generated there on first start)' },
      { name: 'node-ca', type: 'string', value: 'FILE', env: 'NODEMESH_NODE_CA', help: "the CA of the agents' node credentials" },
      { name: 'ca-cert', type: 'string', value: 'FILE', help: "the operator's signing certificate (with --ca-key)" },
      { name: 'ca-key', type: 'string', value: 'FILE', help: 'its key' },
      { name: 'ca-chain', type: 'string', value: 'FILE', help: 'its chain up to the root' },
      { name: 'cert-ttl', type: 'string', value: 'DURATION', default: '24h', env: 'NODEMESH_CERT_TTL', help: 'workload certificates\' lifetime' },
      { name: 'root-overlap', type: 'string', value: 'DURATION', env: 'NODEMESH_ROOT_OVERLAP', help: 'how long a rotated-out root stays trusted (default: the cert TTL)' },
      { name: 'server-name', type: 'string', multiple: true, value: 'NAME', help: 'another DNS name or IP in the serving certificate' },
      { name: 'insecure', type: 'boolean', help: 'plaintext gRPC, no CA (development only)' },
      { name: 'max-file-size', type: 'string', value: 'SIZE', help: 'the largest YAML file read (e.g. 4Mi)' },
      { name: 'max-documents-per-file', type: 'string', value: 'N', help: 'documents per file' },
      { name: 'max-resource-size', type: 'string', value: 'SIZE', help: 'the largest resource' },
      { name: 'max-resources', type: 'string', value: 'N', help: 'resources in force' },
      { name: 'max-config-size', type: 'string', value: 'SIZE', help: 'all the YAML in force' },
    ],
    example: 'nodemesh control --config-dir /etc/nodemesh/config --ca-dir /var/lib/nodemesh/ca --node-ca /etc/nodemesh/node-ca.pem',
    run: async (_v, _p, _r, raw) => (await import('./run-control.js')).runControl(raw),
  },
  {
    words: ['agent'],
    summary: `run the node agent (outbound ${AGENT_PORTS.outbound}, admin ${AGENT_PORTS.admin}); a second agent started beside it takes over`,
    parse: 'delegate',
    details: 'env NODE_NAME, NODE_IP, NODEMESH_CONTROL stand in for --node, --proxy-ip, --control (DaemonSet).\nOn SIGTERM it drains; the datapath stays (fail closed) until `nodemesh agent cleanup`.\nWith --gateway: the east-west gateway (Deployment nodemesh-eastwestgateway), --proxy-ip its pod IP, its identity its ServiceAccount\'s.',
    flags: [
      { name: 'node', type: 'string', value: 'NAME', env: 'NODE_NAME', help: 'this node' },
      { name: 'control', type: 'string', value: 'HOST:PORT', env: 'NODEMESH_CONTROL', help: "the control plane's gRPC address" },
      { name: 'proxy-ip', type: 'string', value: 'IP', env: 'NODE_IP', help: "the node proxy's address" },
      { name: 'admin', type: 'string', value: 'HOST:PORT', help: `admin port (default the proxy IP:${AGENT_PORTS.admin})` },
      { name: 'root-cert', type: 'string', value: 'FILE', env: 'NODEMESH_ROOT_CERT', help: 'the mesh root(s) the control plane is verified with' },
      { name: 'node-credential', type: 'string', value: 'DIR', env: 'NODEMESH_NODE_CREDENTIAL', help: "this node's cert.pem and key.pem" },
      { name: 'token-file', type: 'string', value: 'FILE', env: 'NODEMESH_TOKEN_FILE', help: 'a projected ServiceAccount token (audience nodemesh), instead of a node credential' },
      { name: 'pods-cgroup', type: 'string', value: 'DIR', help: 'the cgroup v2 the pods run under' },
      { name: 'pin-dir', type: 'string', value: 'DIR', help: 'bpffs directory for pins' },
      { name: 'netns-dir', type: 'string', value: 'DIR', help: "where the runtime pins pods' network namespaces" },
      { name: 'cni-socket', type: 'string', value: 'PATH', help: 'where the chained CNI plugin asks to enroll a pod (default: <state dir>/cni.sock)' },
      { name: 'state-dir', type: 'string', value: 'DIR', env: 'NODEMESH_STATE_DIR', help: 'last good state and the hand-over socket' },
      { name: 'drain-period', type: 'string', value: 'DURATION', default: '20s', env: 'NODEMESH_DRAIN_PERIOD', help: 'how long a stop drains' },
      { name: 'liveness-timeout', type: 'string', value: 'DURATION', default: '2s', env: 'NODEMESH_LIVENESS_TIMEOUT', help: 'after this without a heartbeat the kernel treats the proxy as down' },
      { name: 'root-change-spread', type: 'string', value: 'DURATION', default: '30s', env: 'NODEMESH_ROOT_CHANGE_SPREAD', help: 'renewals after a root rotation are spread over this' },
      { name: 'request-headers-timeout', type: 'string', value: 'DURATION', env: 'NODEMESH_REQUEST_HEADERS_TIMEOUT', help: "a request head's deadline" },
      { name: 'max-connections-per-source', type: 'string', value: 'N', env: 'NODEMESH_MAX_CONNECTIONS_PER_SOURCE', help: 'per source pod (0: unbounded)' },
      { name: 'max-requests-per-source', type: 'string', value: 'N', env: 'NODEMESH_MAX_REQUESTS_PER_SOURCE', help: 'per source pod (0: unbounded)' },
      { name: 'admin-trusted-networks', type: 'string', value: 'CIDR,…', env: 'NODEMESH_ADMIN_TRUSTED_NETWORKS', help: 'who besides the node may use the admin port' },
      { name: 'admin-token-file', type: 'string', value: 'FILE', env: 'NODEMESH_ADMIN_TOKEN_FILE', help: 'bearer token for /debug' },
      { name: 'metrics-token-file', type: 'string', value: 'FILE', env: 'NODEMESH_METRICS_TOKEN_FILE', help: 'bearer token for /metrics and /healthz only' },
      { name: 'workers', type: 'string', value: 'N', env: 'NODEMESH_WORKERS', help: "proxy processes on the same listeners (default: the cores the agent's cgroup allows; 1: in the agent's own process)" },
      { name: 'insecure-control', type: 'boolean', help: 'plaintext to the control plane, no identities (development only)' },
      { name: 'gateway', type: 'boolean', help: `run as the network's east-west gateway instead (HBONE on <proxy-ip>:${AGENT_PORTS.hbone}, admin ${AGENT_PORTS.admin}; no datapath): the flags of the control plane, identity, admin, --state-dir and --drain-period apply` },
    ],
    example: 'nodemesh agent --node node-a --control 10.0.0.1:15012 --proxy-ip 10.0.0.2 --root-cert /etc/nodemesh/root.pem --node-credential /var/lib/kubelet/pki',
    run: async (_v, _p, _r, raw) => (await import('./run-agent.js')).runAgent(raw),
  },
  {
    words: ['create-remote-secret'],
    summary: "print a remote secret (Istio's model) that lets other clusters' control planes read this cluster",
    details:
      'Reads the token of the ServiceAccount nodemesh-reader (deploy/kubernetes/remote-reader, applied to this cluster first)\n' +
      'and prints a Secret labelled istio/multiCluster=true holding a kubeconfig for it; apply it to every other cluster.',
    flags: [
      { name: 'name', type: 'string', value: 'CLUSTER', help: "this cluster's name, as its control plane's --cluster" },
      { name: 'kubeconfig', type: 'string', value: 'FILE', help: 'the cluster to be read (default: $KUBECONFIG, or in-cluster)' },
      { name: 'server', type: 'string', value: 'URL', help: "the API server's address as other clusters reach it (default: the kubeconfig's)" },
      { name: 'namespace', type: 'string', value: 'NS', default: 'nodemesh-system', help: "the reader's namespace here, and the Secret's in the other clusters" },
      { name: 'network', type: 'string', value: 'NET', help: "this cluster's network, when its nodemesh-system is not labelled topology.istio.io/network" },
    ],
    example: 'nodemesh create-remote-secret --name cluster-b --kubeconfig b.kubeconfig --server https://203.0.113.7:6443 | kubectl --context a apply -f -',
    run: async (v) => {
      const name = str(v.name);
      if (!name) throw new UsageError('create-remote-secret: --name CLUSTER is required (this cluster\'s name, as its --cluster)');
      const { createRemoteSecret } = await import('./create-remote-secret.js');
      const kubeconfig = str(v.kubeconfig);
      const server = str(v.server);
      const namespace = str(v.namespace);
      const network = str(v.network);
      process.stdout.write(await createRemoteSecret({ name, ...(kubeconfig ? { kubeconfig } : {}), ...(server ? { server } : {}), ...(namespace ? { namespace } : {}), ...(network ? { network } : {}) }));
      return 0;
    },
  },
  {
    words: ['agent', 'cleanup'],
    summary: 'uninstall: remove what agents left on this node (tc filters, rules, cgroup links, pins, state)',
    parse: 'delegate',
    flags: [
      { name: 'pin-dir', type: 'string', value: 'DIR', help: 'bpffs directory of the pins' },
      { name: 'state-dir', type: 'string', value: 'DIR', env: 'NODEMESH_STATE_DIR', help: "the agent's state dir" },
    ],
    example: 'nodemesh agent cleanup',
    run: async (_v, _p, _r, raw) => (await import('./run-agent.js')).runAgent(['cleanup', ...raw]),
  },
  {
    words: ['analyze'],
    summary: 'check YAML offline before it is applied: every error, cross-resource mistakes, with Istio\'s IST codes (a CI step)',
    details: 'Exit 1 when a finding is at or above --failure-threshold. Codes: IST0101, IST0106, IST0108, IST0109, IST0127,\nIST0128, IST0129, IST0130, IST0131, IST0173, IST0174 (as istioctl analyze) and NM0100-NM0106 (nodemesh\'s own).',
    flags: [
      { name: 'file', short: 'f', type: 'string', multiple: true, value: 'DIR|FILE', help: 'the YAML to analyse' },
      OUTPUT_FLAG,
      { name: 'output-threshold', type: 'string', value: 'LEVEL', default: 'Info', help: 'the lowest level printed: Info, Warning or Error' },
      { name: 'failure-threshold', type: 'string', value: 'LEVEL', default: 'Error', help: 'the lowest level that makes the exit code 1' },
    ],
    example: 'nodemesh analyze -f deploy/lab/samples\nnodemesh analyze -f routes.yaml -f destination-rules.yaml -o json',
    run: async (v) => {
      const { runAnalyze, level } = await import('./analyze.js');
      return runAnalyze(
        { file: v.file as string[] | undefined, output: outputFormat(v.output), outputThreshold: level(v['output-threshold'], '--output-threshold'), failureThreshold: level(v['failure-threshold'], '--failure-threshold') },
        process.stdout,
      );
    },
  },
  {
    words: ['config', 'status'],
    summary: 'every resource of a running control plane: Accepted / Rejected with every error, and the analysis',
    details: 'Exit 1 if a resource is rejected, a file has an error or the analysis finds an Error; 2 if the control plane cannot be asked.',
    flags: [CONTROL, NAME, OUTPUT_FLAG],
    example: 'nodemesh config status --control 10.0.0.1:15014\nnodemesh config status -o json | jq .analysis',
    run: async (v) => {
      const { controlAdminAddress } = await import('./status.js');
      const { printConfigStatus } = await import('./config-status.js');
      return printConfigStatus(str(v.control) ?? (await controlAdminAddress(str(v.name))), process.stdout, outputFormat(v.output));
    },
  },
  {
    words: ['status'],
    summary: 'the control plane and every agent: ready, snapshot version and lag, meshed pods, certificate expiry, memory',
    flags: [CONTROL, AGENT, NAME, TOKEN, OUTPUT_FLAG],
    example: 'nodemesh status\nnodemesh status --control 10.0.0.1:15014 -o json',
    run: async (v) => (await import('./status.js')).runStatus(v, process.stdout),
  },
  {
    words: ['check'],
    summary: 'preflight of this node and, unless --pre, of the mesh: control plane, agents, certificates, versions, config — ✔/✖ with the fix',
    flags: [
      { name: 'pre', type: 'boolean', help: 'only this node, before install (kernel, BTF, cgroup v2, bpffs, capabilities)' },
      CONTROL,
      AGENT,
      NAME,
      TOKEN,
      { name: 'expiry-warning', type: 'string', value: 'DURATION', default: '1h', help: 'a certificate expiring sooner than this fails the check' },
      OUTPUT_FLAG,
    ],
    example: 'nodemesh check --pre\nnodemesh check --name lab',
    run: async (v) => (await import('./check.js')).runCheck(v, process.stdout),
  },
  {
    words: ['tap'],
    summary: 'stream the connections, or with --requests the HTTP requests, node proxies handle, live',
    flags: [
      { ...AGENT, help: `an agent's admin address (port ${AGENT_PORTS.admin})` },
      NAME,
      { name: 'node', type: 'string', value: 'NODE', help: 'only this node of the lab' },
      { name: 'requests', type: 'boolean', help: 'one line per HTTP request at each reporter (method, authority, path, status, latency, flags, pods) instead of per connection' },
      { name: 'namespace', short: 'n', type: 'string', value: 'NS', help: 'requests from or to this namespace' },
      { name: 'to', type: 'string', value: 'NAME', help: 'requests to this workload or Service (name or hostname)' },
      { name: 'pod', type: 'string', value: '[NS/]POD', help: 'requests from or to this pod' },
      { name: 'path', type: 'string', value: 'PREFIX', help: 'requests whose path starts with this' },
      { name: 'method', type: 'string', value: 'METHOD', help: 'requests with this method' },
      { name: 'status', type: 'string', value: 'CODE|Nxx', help: 'requests answered with this status (503) or class (5xx)' },
      { name: 'reporter', type: 'string', value: 'source|destination', help: 'only what the client’s (source) or the server’s (destination) node proxy saw' },
      { name: 'count', type: 'string', value: 'N', help: 'stop after N events' },
      TOKEN,
      OUTPUT_FLAG,
    ],
    example: 'nodemesh tap --name lab --node node-a\nnodemesh tap --requests -n shop --to web --status 5xx\nnodemesh tap --agent 10.0.0.2:15020 --requests --path /api -o json',
    run: async (v) => (await import('./tap.js')).runTap(v),
  },
  ...labCommands(),
  ...caCommands(),
  ...cniCommands(),
  {
    words: ['demo'],
    summary: 'the sample application in a lab, traffic through the mesh and its metrics',
    flags: [
      { name: 'once', type: 'boolean', help: 'one round, then tear down; exit 0 only if the traffic flowed through the mesh' },
      { ...NAME, help: 'the lab (default "demo")' },
      { name: 'screenshot', type: 'string', value: 'FILE', help: 'after the first round, a PNG of the busiest node dashboard (headless Chromium)' },
      { name: 'multicluster', type: 'boolean', help: 'two clusters joined only by east-west gateways (lab "demo-mc"): the client in one, the backend in the other; with --once, exit 0 only if the traffic crossed through the gateways' },
    ],
    example: 'sudo nodemesh demo --once\nsudo nodemesh demo --once --screenshot docs/node-dashboard.png\nsudo nodemesh demo --multicluster --once',
    run: async (v) =>
      (await import('./demo.js')).runDemo([
        ...(v.once === true ? ['--once'] : []),
        ...(typeof v.name === 'string' ? ['--name', v.name] : []),
        ...(typeof v.screenshot === 'string' ? ['--screenshot', v.screenshot] : []),
        ...(v.multicluster === true ? ['--multicluster'] : []),
      ]),
  },
  {
    words: ['version'],
    summary: 'the version and the git revision it was built from',
    flags: [OUTPUT_FLAG],
    example: 'nodemesh version -o json',
    run: async (v) => (await import('./version.js')).printVersion(outputFormat(v.output), process.stdout),
  },
];

function labCommands(): Command[] {
  const lab = async () => import('./lab-commands.js');
  return [
    {
      words: ['lab', 'up'],
      summary: 'start a local cluster of netns nodes and pods from Kubernetes-shaped YAML',
      flags: [
        { name: 'file', short: 'f', type: 'string', value: 'DIR', help: 'the YAML (Nodes, Namespaces, Pods, Services…)' },
        NAME,
        { name: 'no-agents', type: 'boolean', help: 'start no agents (pods reach each other directly)' },
        { name: 'kubernetes', type: 'boolean', help: 'the control plane watches a Kubernetes API server (a wire-level stand-in the lab runs, loaded with the YAML) with --source kubernetes, instead of reading the files' },
        { name: 'quiet', short: 'q', type: 'boolean', help: 'print nothing but errors (scripts)' },
        { name: 'log-format', type: 'string', value: 'FORMAT', help: 'text: one line per step for people (default on a terminal); json: pino JSON logs (default otherwise)' },
      ],
      example: 'sudo nodemesh lab up -f deploy/lab/samples --name demo\nsudo nodemesh lab up -f deploy/lab/samples-multicluster --name mc   # a directory per cluster: two clusters',
      run: async (v) => (await lab()).runLabUp(v),
    },
    {
      words: ['lab', 'exec'],
      summary: 'run a command inside a pod or node of the lab',
      args: 'NAMESPACE/POD|node/NODE -- CMD ARGS…',
      positionals: true,
      flags: [NAME],
      example: 'sudo nodemesh lab exec demo/client -- curl -s http://frontend/',
      run: async (v, p, rest) => (await lab()).runLabExec(v, p, rest),
    },
    {
      words: ['lab', 'annotate'],
      summary: "add, change or remove a running lab pod's annotations, as kubectl annotate (e.g. opt it in or out of the mesh, live)",
      args: 'NAMESPACE/POD KEY=VALUE… | KEY-…',
      positionals: true,
      flags: [NAME, { name: 'overwrite', type: 'boolean', help: 'change a key that already has a value' }, OUTPUT_FLAG],
      example: 'sudo nodemesh lab annotate demo/client nodemesh.io/mesh=disabled --overwrite\nsudo nodemesh lab annotate demo/client nodemesh.io/mesh-',
      run: async (v, p) => (await lab()).runLabAnnotate(v, p),
    },
    {
      words: ['lab', 'down'],
      summary: 'remove everything the lab made (also after a crash)',
      flags: [NAME, OUTPUT_FLAG],
      example: 'sudo nodemesh lab down --name demo',
      run: async (v) => (await lab()).runLabDown(v),
    },
    {
      words: ['lab', 'status'],
      summary: "the lab's nodes, pods, Services and processes",
      flags: [NAME, OUTPUT_FLAG],
      example: 'nodemesh lab status --name demo -o yaml',
      run: async (v) => (await lab()).runLabStatus(v),
    },
  ];
}

function caCommands(): Command[] {
  const ca = async () => import('./ca.js');
  const where: Flag[] = [
    { name: 'ca-dir', type: 'string', value: 'DIR', help: "the control plane's CA dir" },
    NAME,
  ];
  return [
    {
      words: ['ca', 'rotate'],
      summary: 'a new mesh root without dropping traffic: the old one stays trusted for the overlap',
      flags: [...where, { name: 'overlap', type: 'string', value: 'DURATION', help: 'how long the old root stays trusted (default: the control plane\'s --root-overlap)' }],
      example: 'sudo nodemesh ca rotate --ca-dir /var/lib/nodemesh/ca --overlap 24h',
      run: async (v) => (await ca()).runCaRotate(v),
    },
    {
      words: ['ca', 'status'],
      summary: 'the roots trusted now and a rotation in progress',
      flags: [...where, OUTPUT_FLAG],
      example: 'sudo nodemesh ca status --name demo -o json',
      run: async (v) => (await ca()).runCaStatus(v),
    },
    {
      words: ['ca', 'node-ca'],
      summary: "a CA for the agents' node credentials (where the kubelet's is not used)",
      flags: [{ name: 'out', type: 'string', value: 'DIR', help: 'where to write it' }],
      example: 'nodemesh ca node-ca --out ./node-ca',
      run: async (v) => (await ca()).runCaNodeCa(v),
    },
    {
      words: ['ca', 'node-credential'],
      summary: "a node's credential, issued by a node CA (agent --node-credential)",
      flags: [
        { name: 'node-ca', type: 'string', value: 'DIR', help: 'the node CA (ca node-ca --out)' },
        { name: 'node', type: 'string', value: 'NODE', help: 'the node' },
        { name: 'out', type: 'string', value: 'DIR', help: 'where to write it' },
      ],
      example: 'nodemesh ca node-credential --node-ca ./node-ca --node node-a --out ./node-a',
      run: async (v) => (await ca()).runCaNodeCredential(v),
    },
  ];
}

function cniCommands(): Command[] {
  const cni = async () => import('./cni.js');
  // the flags are declared here (not imported from cni.ts) so `--help` loads no installer
  const flags: Flag[] = [
    { name: 'cni-conf-dir', type: 'string', value: 'DIR', env: 'NODEMESH_CNI_CONF_DIR', help: "the host's CNI config dir (default /etc/cni/net.d)" },
    { name: 'cni-bin-dir', type: 'string', value: 'DIR', env: 'NODEMESH_CNI_BIN_DIR', help: "the host's CNI bin dir (default /opt/cni/bin)" },
    { name: 'state-dir', type: 'string', value: 'DIR', env: 'NODEMESH_CNI_STATE_DIR', help: 'where the original config is kept until uninstall, on the host (default /var/lib/nodemesh/cni)' },
  ];
  return [
    {
      words: ['cni', 'install'],
      summary: "install the chained CNI plugin and keep it chained into the node's CNI config until SIGTERM, then put the original back",
      details: "The first *.conf/*.conflist/*.json of the config dir by name is the runtime's; nodemesh-cni goes last in its chain (a .conf becomes a .conflist). The DaemonSet's install-cni container runs this.",
      flags: [
        ...flags,
        { name: 'plugin', type: 'string', value: 'FILE', help: 'the plugin executable to install (default: build/cni/nodemesh-cni of this package)' },
        { name: 'agent-socket', type: 'string', value: 'PATH', help: "the agent's CNI socket as the host sees it (default /run/nodemesh/agent/cni.sock)" },
        { name: 'exclude-namespaces', type: 'string', value: 'NS,NS', help: 'pods the plugin never asks the agent about (default kube-system,nodemesh-system)' },
        { name: 'once', type: 'boolean', help: 'install and exit (no watch, no uninstall)' },
        { name: 'keep-on-exit', type: 'boolean', help: 'on SIGTERM stop watching but leave the plugin chained' },
      ],
      example: 'sudo nodemesh cni install --cni-conf-dir /etc/cni/net.d --cni-bin-dir /opt/cni/bin',
      run: async (v) => (await cni()).runCniInstall(v, process.stdout),
    },
    {
      words: ['cni', 'uninstall'],
      summary: "put the node's original CNI config back (byte for byte) and remove the plugin binary",
      flags,
      example: 'sudo nodemesh cni uninstall',
      run: async (v) => (await cni()).runCniUninstall(v, process.stdout),
    },
  ];
}

export function requireString(v: Values, flag: string, why: string): string {
  const s = v[flag];
  if (typeof s !== 'string' || s === '') throw new UsageError(why);
  return s;
}
