// The production manifests (deploy/kubernetes, a kustomize base) as a cluster would get
// them: rendered by `kubectl kustomize` (offline, no cluster), every object validated against
// the Kubernetes OpenAPI schemas (kubernetes-models' validators, offline), and the
// invariants an operator relies on asserted: two control-plane replicas spread over nodes
// and a PodDisruptionBudget; requests, limits and probes on every container; capabilities
// dropped, the few added back each with its reason; RBAC exactly what the code uses (the
// list/watch set derived from the Kubernetes source's kinds, the API calls found in the
// code); the agent's projected token for audience nodemesh; no CA on an emptyDir; the CNI
// installer on the host's CNI dirs; every flag given to a command one that command knows.
// The optional east-west gateway (deploy/kubernetes/eastwestgateway, issue 13) likewise: its
// own ServiceAccount's token, the downward API, no privilege, a LoadBalancer Service the
// control plane discovers as its network's gateway, and no RBAC (it uses no Kubernetes API).
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, parseDocument, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { COMMANDS } from '../../cli/commands.js';
import { NODEMESH_TOKEN_AUDIENCE } from '../../control/ca/token-auth.js';
import { KUBERNETES_TYPES, REMOTE_KUBERNETES_TYPES } from '../../control/source/kubernetes.js';
import { READER_SERVICE_ACCOUNT, READER_TOKEN_SECRET } from '../../cli/create-remote-secret.js';
import { AGENT_PORTS, CONTROL_PORTS } from '../../common/ports.js';
import { packagePath } from '../../common/paths.js';
import { AGENT_ENV, JEMALLOC, JEMALLOC_CONF, hostHasJemalloc } from '../../deploy/lab/lab-agents.js';

const DIR = packagePath('deploy', 'kubernetes');
const NAMESPACE = 'nodemesh-system';

interface Probe {
  httpGet?: { path: string; port: number | string };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  args?: string[];
  ports?: { containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
  };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Volume {
  name: string;
  hostPath?: { path: string };
  emptyDir?: unknown;
  configMap?: { name: string };
  secret?: { secretName: string };
  projected?: { sources: { serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string } }[] };
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  hostNetwork?: boolean;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  priorityClassName?: string;
  affinity?: {
    podAntiAffinity?: {
      preferredDuringSchedulingIgnoredDuringExecution?: {
        podAffinityTerm: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } };
      }[];
      requiredDuringSchedulingIgnoredDuringExecution?: unknown[];
    };
  };
}
interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    minAvailable?: number | string;
    selector?: { matchLabels?: Record<string, string> };
    template?: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
  rules?: Rule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

function render(dir = DIR): Obj[] {
  let out: string;
  try {
    out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  } catch (err) {
    throw new Error(`kubectl kustomize ${dir} failed (kubectl ≥ 1.27 renders offline): ${(err as Error).message}`);
  }
  return parseAllDocuments(out).map((d) => {
    if (d.errors.length) throw new Error(`rendered YAML: ${d.errors[0]!.message}`);
    return d.toJS() as Obj;
  });
}

const objects = render();
const one = (kind: string, name?: string): Obj => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
};
const deployment = one('Deployment', 'nodemesh-control');
const daemonSet = one('DaemonSet', 'nodemesh-agent');
const workloads = [deployment, daemonSet];
const podSpec = (o: Obj) => o.spec!.template!.spec;
const allContainers = (o: Obj) => [...(podSpec(o).initContainers ?? []), ...podSpec(o).containers];
const container = (o: Obj, name: string) => allContainers(o).find((c) => c.name === name)!;

test('every rendered object validates against the Kubernetes OpenAPI schema of its kind', async (t) => {
  t.true(objects.length >= 10, `${objects.length} objects rendered`);
  for (const o of objects) {
    const Model = (
      (await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<string, new (o: unknown) => { validate(): void }>
    )[o.kind]!;
    t.truthy(Model, `a schema for ${o.apiVersion} ${o.kind}`);
    t.notThrows(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`);
  }
});

async function validate(t: ExecutionContext, o: Obj): Promise<void> {
  const Model = ((await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<string, new (o: unknown) => { validate(): void }>)[
    o.kind
  ]!;
  t.truthy(Model, `a schema for ${o.apiVersion} ${o.kind}`);
  t.notThrows(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`);
}

test('the uninstall kustomization (a DaemonSet running `agent cleanup` and `cni uninstall` on every node) validates, drops ALL, passes known flags', async (t) => {
  const cleanup = render(path.join(DIR, 'uninstall'));
  for (const o of cleanup) await validate(t, o);
  const ds = cleanup.find((o) => o.kind === 'DaemonSet')!;
  t.deepEqual(
    (podSpec(ds).initContainers ?? []).map((c) => c.args!.slice(0, 2)),
    [
      ['agent', 'cleanup'],
      ['cni', 'uninstall'],
    ],
  );
  for (const c of allContainers(ds)) {
    t.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], c.name);
    t.not(c.securityContext?.privileged, true, c.name);
    t.truthy(c.resources?.limits?.memory, c.name);
  }
  for (const c of podSpec(ds).initContainers!) {
    const command = COMMANDS.find((k) => k.words.join(' ') === c.args!.slice(0, 2).join(' '))!;
    for (const a of c.args!.filter((x) => x.startsWith('--')))
      t.true(
        command.flags.some((f) => f.name === a.slice(2).split('=')[0]),
        a,
      );
  }
});

test('the schema validation is real: a wrongly typed field is refused', async (t) => {
  const { Deployment } = await import('kubernetes-models/apps/v1/Deployment');
  const broken = structuredClone(deployment) as unknown as { spec: { replicas: unknown } };
  broken.spec.replicas = 'two';
  t.throws(() => new Deployment(broken as never).validate(), { message: /replicas must be integer/ });
});

test('everything lands in nodemesh-system, which the mesh never captures', (t) => {
  for (const o of objects) {
    if (['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) continue;
    t.is(o.metadata.namespace, NAMESPACE, `${o.kind} ${o.metadata.name}`);
  }
  t.is(one('Namespace').metadata.labels!['nodemesh.io/mesh'], 'disabled');
});

test('the control plane: two replicas on different nodes where possible, and a PodDisruptionBudget that keeps one', (t) => {
  t.true(deployment.spec!.replicas! >= 2);
  const labels = deployment.spec!.template!.metadata!.labels!;
  const terms = podSpec(deployment).affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  t.true(
    terms.some(
      (w) =>
        w.podAffinityTerm.topologyKey === 'kubernetes.io/hostname' &&
        Object.entries(w.podAffinityTerm.labelSelector.matchLabels).every(([k, v]) => labels[k] === v),
    ),
    'anti-affinity on kubernetes.io/hostname against its own pods',
  );
  const pdb = one('PodDisruptionBudget');
  t.true(
    Object.entries(pdb.spec!.selector!.matchLabels!).every(([k, v]) => labels[k] === v),
    'the PDB selects the control plane',
  );
  t.true(
    typeof pdb.spec!.minAvailable === 'number' && pdb.spec!.minAvailable >= 1 && pdb.spec!.minAvailable < deployment.spec!.replicas!,
    'one kept, one may be drained',
  );
  const service = one('Service', 'nodemesh-control');
  t.deepEqual(service.spec!.selector, labels as never);
});

test('every container has CPU and memory requests and limits, requests within limits', (t) => {
  const bytes = (q: string) =>
    Number(/^(\d+)(Ki|Mi|Gi)?$/.exec(q)![1]) * { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[/^\d+(Ki|Mi|Gi)?$/.exec(q)![1] ?? '']!;
  const cpu = (q: string) => (q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q));
  for (const w of workloads) {
    for (const c of allContainers(w)) {
      const r = c.resources;
      const where = `${w.kind} ${w.metadata.name} container ${c.name}`;
      for (const k of ['cpu', 'memory']) {
        t.truthy(r?.requests?.[k], `${where}: requests.${k}`);
        t.truthy(r?.limits?.[k], `${where}: limits.${k}`);
      }
      t.true(cpu(r!.requests!.cpu!) <= cpu(r!.limits!.cpu!), `${where}: cpu request within its limit`);
      t.true(bytes(r!.requests!.memory!) <= bytes(r!.limits!.memory!), `${where}: memory request within its limit`);
    }
  }
});

test('probes: the control plane started, ready and live on 15014, the agent started, ready and live on 15020', (t) => {
  const cp = container(deployment, 'control');
  t.deepEqual(cp.startupProbe?.httpGet, { path: '/healthz/live', port: CONTROL_PORTS.admin });
  // a start may wait for the CA root (caWaitMs, 120 s) and the remote clusters (30 s)
  t.true(cp.startupProbe!.periodSeconds! * cp.startupProbe!.failureThreshold! >= 150);
  t.deepEqual(cp.readinessProbe?.httpGet, { path: '/healthz/ready', port: CONTROL_PORTS.admin });
  t.deepEqual(cp.livenessProbe?.httpGet, { path: '/healthz/live', port: CONTROL_PORTS.admin });
  const agent = container(daemonSet, 'agent');
  t.deepEqual(agent.startupProbe?.httpGet, { path: '/healthz/ready', port: AGENT_PORTS.admin });
  t.deepEqual(agent.readinessProbe?.httpGet, { path: '/healthz/ready', port: AGENT_PORTS.admin });
  t.deepEqual(agent.livenessProbe?.httpGet, { path: '/healthz/live', port: AGENT_PORTS.admin });
  t.deepEqual(agent.ports!.map((p) => p.containerPort).sort(), Object.values(AGENT_PORTS).sort());
  t.deepEqual(cp.ports!.map((p) => p.containerPort).sort(), Object.values(CONTROL_PORTS).sort());
  t.true(podSpec(daemonSet).hostNetwork);
  t.is(podSpec(daemonSet).priorityClassName, 'system-node-critical');
});

test("the agent and the gateway run on jemalloc, preloaded from the image with the lab agents' settings, and glibc's malloc keeps two arenas where it serves", (t) => {
  type Env = { env: { name: string; value?: string }[] };
  const env = (c: unknown, name: string) => (c as Env).env.find((e) => e.name === name)?.value;
  for (const c of [container(daemonSet, 'agent'), container(gatewayOne('Deployment'), 'gateway')]) {
    t.is(env(c, 'LD_PRELOAD'), 'libjemalloc.so.2');
    t.is(env(c, 'MALLOC_CONF'), JEMALLOC_CONF);
    t.is(env(c, 'MALLOC_ARENA_MAX'), '2');
  }
  // the image's runtime stage installs what LD_PRELOAD names
  const dockerfile = fs.readFileSync(packagePath('deploy', 'image', 'Dockerfile'), 'utf8');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  t.regex(runtime, /apt-get install [^\n]*\blibjemalloc2\b/);
  t.is(JEMALLOC, 'libjemalloc.so.2');
  t.is(AGENT_ENV.MALLOC_ARENA_MAX, '2');
  // scripts/bootstrap.sh installs it: in CI the lab's agents always preload it
  if (process.env.CI === 'true') t.true(hostHasJemalloc(), 'libjemalloc2 is not installed (scripts/bootstrap.sh installs it)');
  t.is(AGENT_ENV.LD_PRELOAD as string | undefined, hostHasJemalloc() ? JEMALLOC : undefined);
  t.is(AGENT_ENV.MALLOC_CONF as string | undefined, hostHasJemalloc() ? JEMALLOC_CONF : undefined);
});

test('prometheus.io scrape annotations on both pod templates, on their admin ports', (t) => {
  t.like(deployment.spec!.template!.metadata!.annotations, {
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': String(CONTROL_PORTS.admin),
    'prometheus.io/path': '/metrics',
  });
  t.like(daemonSet.spec!.template!.metadata!.annotations, {
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': String(AGENT_PORTS.admin),
    'prometheus.io/path': '/stats/prometheus',
  });
});

test('no container is privileged; every one drops ALL; only the agent adds BPF, NET_ADMIN and SYS_ADMIN, each with its reason', (t) => {
  for (const w of workloads) {
    for (const c of allContainers(w)) {
      const sc = c.securityContext;
      t.not(sc?.privileged, true, `${c.name} not privileged`);
      t.deepEqual(sc?.capabilities?.drop, ['ALL'], `${c.name} drops ALL`);
      t.is(sc?.allowPrivilegeEscalation, false, `${c.name}`);
      t.true(sc?.readOnlyRootFilesystem, `${c.name} read-only root`);
      if (c.name !== 'agent') t.deepEqual(sc?.capabilities?.add ?? [], [], `${c.name} adds nothing`);
    }
  }
  t.deepEqual([...container(daemonSet, 'agent').securityContext!.capabilities!.add!].sort(), ['BPF', 'NET_ADMIN', 'SYS_ADMIN']);
  // the reasons are comments of the source file (rendering drops comments)
  const source = parseAllDocuments(fs.readFileSync(path.join(DIR, 'agent.yaml'), 'utf8')).find((d) => d.get('kind') === 'DaemonSet')!;
  const containers = source.getIn(['spec', 'template', 'spec', 'containers'], true) as YAMLSeq;
  const agentIndex = containers.items.findIndex((c) => (c as { get(k: string): unknown }).get('name') === 'agent');
  const add = source.getIn(
    ['spec', 'template', 'spec', 'containers', agentIndex, 'securityContext', 'capabilities', 'add'],
    true,
  ) as YAMLSeq;
  add.items.forEach((item, i) => {
    const reason = (item as { commentBefore?: string }).commentBefore ?? (i === 0 ? add.commentBefore : undefined);
    t.true((reason ?? '').trim().length > 20, `CAP_${String((item as { value: unknown }).value)} has a comment saying why`);
  });
  // a comment before a map key is the key's (the map's, for its first key)
  const sc = source.getIn(['spec', 'template', 'spec', 'containers', agentIndex, 'securityContext'], true) as YAMLMap<Scalar, unknown>;
  const at = sc.items.findIndex((p) => p.key.value === 'privileged');
  t.regex(
    sc.items[at]?.key.commentBefore ?? (at === 0 ? sc.commentBefore : undefined) ?? '',
    /not privileged: .{20}/,
    'why not privileged is written down',
  );
});

/** `group resource verb [name]` for every permission a role grants. */
function granted(kind: 'ClusterRole' | 'Role'): Set<string> {
  const out = new Set<string>();
  for (const r of one(kind).rules!) {
    for (const g of r.apiGroups ?? [])
      for (const res of r.resources ?? [])
        for (const v of r.verbs) for (const n of r.resourceNames ?? ['*']) out.add(`${g || 'core'} ${res} ${v} ${n}`);
  }
  return out;
}

/** The API calls the control plane's code makes with a literal path: `client.get|getOptional|create|update(…'/api…')`. */
function callsInCode(): Set<string> {
  const out = new Set<string>();
  const verbs: Record<string, string> = {
    get: 'get',
    getOptional: 'get',
    create: 'create',
    update: 'update',
    replace: 'update',
    patch: 'patch',
    delete: 'delete',
  };
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        const text = fs.readFileSync(p, 'utf8');
        for (const m of text.matchAll(
          /\.(get|getOptional|create|update|replace|patch|delete)(?:<[^>(]*>)?\(\s*[`'"](\/apis?\/[^`'"]+)[`'"]/g,
        )) {
          const parts = m[2]!.split('/').filter(Boolean);
          const [group, rest] = parts[0] === 'api' ? ['core', parts.slice(2)] : [parts[1]!, parts.slice(3)];
          const resource = rest[0] === 'namespaces' && rest.length > 2 ? rest[2]! : rest[0]!;
          out.add(`${group} ${resource} ${verbs[m[1]!]!}`);
        }
      }
    }
  };
  walk(packagePath('control'));
  return out;
}

test('RBAC: the cluster-wide role is exactly what the code uses — list/watch on every kind the Kubernetes source reads, status updates of the Istio and Gateway API kinds, TokenReviews, the bound pod', (t) => {
  const used = new Set<string>();
  for (const k of KUBERNETES_TYPES) for (const v of ['list', 'watch']) used.add(`${k.group || 'core'} ${k.plural} ${v} *`);
  // conditions written back on every Istio / Gateway API kind read that has a status (ReferenceGrant has none)
  for (const k of KUBERNETES_TYPES) if (k.crd && k.kind !== 'ReferenceGrant') used.add(`${k.group} ${k.plural}/status update *`);
  const calls = callsInCode();
  t.true(calls.has('authentication.k8s.io tokenreviews create'), 'the code creates TokenReviews');
  t.true(calls.has('core pods get'), 'the code reads the pod a token is bound to');
  for (const c of calls) used.add(`${c} *`);
  const have = granted('ClusterRole');
  t.deepEqual([...have].filter((g) => !used.has(g)).sort(), [], 'nothing granted that the code does not use');
  t.deepEqual([...used].filter((u) => !have.has(u)).sort(), [], 'everything the code uses is granted');
  for (const r of [...one('ClusterRole').rules!, ...one('Role').rules!]) {
    t.false([...(r.apiGroups ?? []), ...(r.resources ?? []), ...r.verbs].includes('*'), 'no wildcard');
  }
  t.deepEqual(one('ClusterRoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'nodemesh-control', namespace: NAMESPACE }]);
});

test('RBAC: in nodemesh-system only the Lease nodemesh-control, the CA Secrets cacerts and nodemesh-ca-secret, the ConfigMap nodemesh-root, and list/watch of Secrets (the remote secrets)', (t) => {
  // the names shared by the leader election and the CA (ARCHITECTURE.md, issue 9); create
  // cannot be limited by name, so it is granted without one
  const used = new Set([
    'coordination.k8s.io leases get nodemesh-control',
    'coordination.k8s.io leases update nodemesh-control',
    'coordination.k8s.io leases create *',
    'core secrets get cacerts',
    'core secrets get nodemesh-ca-secret',
    'core secrets create *',
    // the remote secrets (kube/remote-secrets.ts): RBAC cannot narrow list/watch to a label
    'core secrets list *',
    'core secrets watch *',
    'core configmaps get nodemesh-root',
    'core configmaps update nodemesh-root',
    'core configmaps create *',
  ]);
  t.deepEqual([...granted('Role')].sort(), [...used].sort());
  t.is(one('Role').metadata.namespace, NAMESPACE);
  t.deepEqual(one('RoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'nodemesh-control', namespace: NAMESPACE }]);
  t.false(
    objects.some((o) => o.subjects?.some((s) => s.name === 'nodemesh-agent')),
    'the agent has no Kubernetes permission at all',
  );
});

test("the agent's credential is a projected ServiceAccount token for audience nodemesh, short-lived, and nothing else", (t) => {
  const pod = podSpec(daemonSet);
  t.false(pod.automountServiceAccountToken, 'no API token mounted');
  const tokenVolume = pod.volumes!.find((v) => v.projected?.sources.some((s) => s.serviceAccountToken));
  const token = tokenVolume!.projected!.sources.find((s) => s.serviceAccountToken)!.serviceAccountToken!;
  t.is(token.audience, NODEMESH_TOKEN_AUDIENCE);
  t.true(token.expirationSeconds! <= 3600, 'short-lived (the kubelet rotates it at 80 %)');
  const agent = container(daemonSet, 'agent');
  const mount = agent.volumeMounts!.find((m) => m.name === tokenVolume!.name)!;
  t.true(agent.args!.includes(`--token-file=${mount.mountPath}/${token.path}`));
  t.false(agent.args!.some((a) => a.startsWith('--node-credential') || a.startsWith('--insecure')));
  t.false(
    pod.volumes!.some((v) => v.hostPath?.path.includes('kubelet')),
    "the kubelet's key is not read",
  );
  const root = pod.volumes!.find((v) => v.configMap?.name === 'nodemesh-root');
  t.truthy(root, 'the roots from the ConfigMap the control plane publishes');
  t.true(agent.args!.includes(`--root-cert=${agent.volumeMounts!.find((m) => m.name === root!.name)!.mountPath}/root-cert.pem`));
});

test('no CA on an emptyDir (nor any emptyDir): the control plane keeps its root in the Secrets', (t) => {
  for (const w of workloads)
    t.deepEqual(podSpec(w).volumes?.filter((v) => v.emptyDir !== undefined) ?? [], [], `${w.kind} ${w.metadata.name}`);
  const cp = container(deployment, 'control');
  t.true(cp.args!.includes('--source=kubernetes'));
  t.false(cp.args!.some((a) => a.startsWith('--ca-dir') || a.startsWith('--ca-key') || a.startsWith('--insecure')));
  t.deepEqual(podSpec(deployment).volumes ?? [], [], 'nothing mounted: the CA and the configuration come from the API server');
});

test('the CNI installer runs beside the agent on the host CNI dirs, and every hostPath is mounted where a flag points', (t) => {
  const cni = container(daemonSet, 'install-cni');
  t.deepEqual(cni.args!.slice(0, 2), ['cni', 'install']);
  const pod = podSpec(daemonSet);
  const hostPathOf = (c: Container, mountPath: string) =>
    pod.volumes!.find((v) => v.name === c.volumeMounts!.find((m) => m.mountPath === mountPath)?.name)?.hostPath?.path;
  const flag = (c: Container, name: string) => c.args!.find((a) => a.startsWith(`--${name}=`))!.split('=')[1]!;
  t.is(hostPathOf(cni, flag(cni, 'cni-conf-dir')), '/etc/cni/net.d');
  t.is(hostPathOf(cni, flag(cni, 'cni-bin-dir')), '/opt/cni/bin');
  t.is(hostPathOf(cni, flag(cni, 'state-dir')), '/var/lib/nodemesh/cni');
  const agent = container(daemonSet, 'agent');
  // the plugin on the host dials the agent's socket in its state dir: the same host path
  t.is(hostPathOf(agent, '/run/nodemesh/agent'), '/run/nodemesh/agent');
  t.is(hostPathOf(agent, '/sys/fs/bpf'), '/sys/fs/bpf');
  t.is(hostPathOf(agent, flag(agent, 'pods-cgroup')), '/sys/fs/cgroup');
  t.is(hostPathOf(agent, flag(agent, 'netns-dir')), '/run/netns');
  const mounted = new Set(allContainers(daemonSet).flatMap((c) => c.volumeMounts!.map((m) => m.name)));
  for (const v of pod.volumes!) t.true(mounted.has(v.name), `volume ${v.name} is mounted`);
  for (const c of allContainers(daemonSet))
    for (const m of c.volumeMounts!)
      t.truthy(
        pod.volumes!.find((v) => v.name === m.name),
        `${c.name}: volume ${m.name} exists`,
      );
});

test('every flag a container passes is a flag of that nodemesh command', (t) => {
  for (const w of workloads) {
    for (const c of allContainers(w)) {
      const words = c.args!.filter((a) => !a.startsWith('-'));
      const command = COMMANDS.filter((k) => k.words.every((word, i) => words[i] === word)).sort(
        (a, b) => b.words.length - a.words.length,
      )[0];
      t.truthy(command, `${c.name}: ${words.join(' ')} is a command`);
      const known = new Set(command!.flags.map((f) => f.name));
      for (const a of c.args!.filter((x) => x.startsWith('--')))
        t.true(known.has(a.slice(2).split('=')[0]!), `${c.name}: ${a} is a flag of nodemesh ${command!.words.join(' ')}`);
    }
  }
});

test('the source files parse and the kustomization lists each of them', (t) => {
  const k = parseDocument(fs.readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8')).toJS() as {
    resources: string[];
    namespace: string;
  };
  t.is(k.namespace, NAMESPACE);
  for (const f of fs.readdirSync(DIR).filter((n) => n.endsWith('.yaml') && n !== 'kustomization.yaml')) t.true(k.resources.includes(f), f);
});

// The east-west gateway (issue 13): an optional kustomization of its own, applied after the base.
const GATEWAY_DIR = path.join(DIR, 'eastwestgateway');
const gatewayObjects = render(GATEWAY_DIR);
const gatewayOne = (kind: string): Obj => {
  const found = gatewayObjects.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind} in ${GATEWAY_DIR}, found ${found.length}`);
  return found[0]!;
};

test('the east-west gateway kustomization validates against the schemas, everything in nodemesh-system: a ServiceAccount, a Deployment, its PDB and its LoadBalancer Service', async (t) => {
  for (const o of gatewayObjects) await validate(t, o);
  t.deepEqual(gatewayObjects.map((o) => o.kind).sort(), ['Deployment', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
  for (const o of gatewayObjects) t.is(o.metadata.namespace, NAMESPACE, `${o.kind} ${o.metadata.name}`);
  for (const o of gatewayObjects) t.is(o.metadata.name, 'nodemesh-eastwestgateway', o.kind);
});

test('the gateway runs `agent --gateway` on its pod IP and node (downward API), with its own ServiceAccount’s projected token for audience nodemesh and the published roots', (t) => {
  const d = gatewayOne('Deployment');
  const pod = podSpec(d);
  const c = container(d, 'gateway');
  t.deepEqual(c.args!.slice(0, 2), ['agent', '--gateway']);
  t.is(pod.serviceAccountName, gatewayOne('ServiceAccount').metadata.name);
  t.not(pod.serviceAccountName, 'nodemesh-agent', 'not the agents\' ServiceAccount: the CA gives its token its own identity only');
  t.false(pod.automountServiceAccountToken, 'no API token mounted');
  const env = (c as unknown as { env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[] }).env;
  t.is(env.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
  t.is(env.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
  t.true(c.args!.includes('--node=$(NODE_NAME)'));
  t.true(c.args!.includes('--proxy-ip=$(POD_IP)'));
  const tokenVolume = pod.volumes!.find((v) => v.projected?.sources.some((s) => s.serviceAccountToken))!;
  const token = tokenVolume.projected!.sources.find((s) => s.serviceAccountToken)!.serviceAccountToken!;
  t.is(token.audience, NODEMESH_TOKEN_AUDIENCE);
  t.true(token.expirationSeconds! <= 3600);
  const mountOf = (volume: string) => c.volumeMounts!.find((m) => m.name === volume)!.mountPath;
  t.true(c.args!.includes(`--token-file=${mountOf(tokenVolume.name)}/${token.path}`));
  const root = pod.volumes!.find((v) => v.configMap?.name === 'nodemesh-root')!;
  t.true(c.args!.includes(`--root-cert=${mountOf(root.name)}/root-cert.pem`));
  const state = pod.volumes!.find((v) => v.emptyDir !== undefined)!;
  t.true(c.args!.includes(`--state-dir=${mountOf(state.name)}`), 'its last good state on a memory emptyDir of its own');
  const command = COMMANDS.find((k) => k.words.join(' ') === 'agent')!;
  for (const a of c.args!.filter((x) => x.startsWith('--'))) t.true(command.flags.some((f) => f.name === a.slice(2).split('=')[0]), `${a} is a flag of nodemesh agent`);
  t.false(c.args!.some((a) => a.startsWith('--node-credential') || a.startsWith('--insecure')));
});

test('the gateway has no privilege: not root, no host network, drops ALL and adds nothing, read-only root; probes and scrape on 15020, HBONE on 15008', (t) => {
  const d = gatewayOne('Deployment');
  const pod = podSpec(d) as PodSpec & { securityContext?: { runAsNonRoot?: boolean } };
  const c = container(d, 'gateway');
  t.not(pod.hostNetwork, true);
  t.true(pod.securityContext?.runAsNonRoot);
  t.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
  t.deepEqual(c.securityContext?.capabilities?.add ?? [], []);
  t.is(c.securityContext?.allowPrivilegeEscalation, false);
  t.true(c.securityContext?.readOnlyRootFilesystem);
  t.deepEqual(c.readinessProbe?.httpGet, { path: '/healthz/ready', port: AGENT_PORTS.admin });
  t.deepEqual(c.startupProbe?.httpGet, { path: '/healthz/ready', port: AGENT_PORTS.admin });
  t.deepEqual(c.livenessProbe?.httpGet, { path: '/healthz/live', port: AGENT_PORTS.admin });
  t.deepEqual(c.ports!.map((p) => p.containerPort).sort(), [AGENT_PORTS.hbone, AGENT_PORTS.admin].sort());
  t.like(d.spec!.template!.metadata!.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(AGENT_PORTS.admin), 'prometheus.io/path': '/metrics' });
  for (const k of ['cpu', 'memory']) {
    t.truthy(c.resources?.requests?.[k]);
    t.truthy(c.resources?.limits?.[k]);
  }
  t.true(d.spec!.replicas! >= 2);
  const pdb = gatewayOne('PodDisruptionBudget');
  t.true(typeof pdb.spec!.minAvailable === 'number' && pdb.spec!.minAvailable >= 1 && pdb.spec!.minAvailable < d.spec!.replicas!);
});

test('the gateway Service is what the control plane discovers as its network\'s gateway: LoadBalancer, labelled topology.istio.io/network, HBONE 15008 only, selecting the gateway pods', (t) => {
  const svc = gatewayOne('Service') as Obj & { spec: { type?: string; selector?: Record<string, string>; ports?: { port: number; targetPort: number; protocol?: string }[] } };
  t.is(svc.spec.type, 'LoadBalancer');
  t.truthy(svc.metadata.labels?.['topology.istio.io/network'], 'the network label (control/compile/multicluster.ts discoverGateways)');
  t.deepEqual(svc.spec.ports!.map((p) => [p.port, p.targetPort]), [[AGENT_PORTS.hbone, AGENT_PORTS.hbone]], 'only HBONE leaves the cluster');
  t.deepEqual(svc.spec.selector, gatewayOne('Deployment').spec!.template!.metadata!.labels as never);
});

test('RBAC: the gateway uses no Kubernetes API (it talks only to the control plane), so nothing grants its ServiceAccount anything', (t) => {
  t.false(gatewayObjects.some((o) => ['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'].includes(o.kind)));
  t.false(
    [...objects, ...gatewayObjects].some((o) => o.subjects?.some((s) => s.name === 'nodemesh-eastwestgateway')),
    'no binding names the gateway ServiceAccount',
  );
  // the code of gateway mode makes no API call: it imports no Kubernetes client
  for (const f of ['agent/east-west-gateway.ts', 'agent/hbone/gateway.ts', 'agent/hbone/gateway-scope.ts']) {
    t.false(/kube|@kubernetes\/client-node/.test(fs.readFileSync(packagePath(f), 'utf8').split('\n').filter((l) => l.startsWith('import')).join('\n')), f);
  }
});

test('the remote reader (deploy/kubernetes/remote-reader): validates, and grants exactly list/watch of what a remote cluster gives — no Secret, no CRD, no write', async (t) => {
  const reader = render(path.join(DIR, 'remote-reader'));
  for (const o of reader) await validate(t, o);
  const role = reader.find((o) => o.kind === 'ClusterRole')!;
  const have = new Set<string>();
  for (const r of role.rules!) for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) have.add(`${g || 'core'} ${res} ${v}`);
  const used = new Set(REMOTE_KUBERNETES_TYPES.flatMap((k) => ['list', 'watch'].map((v) => `${k.group || 'core'} ${k.plural} ${v}`)));
  t.deepEqual([...have].sort(), [...used].sort());
  t.false(role.rules!.some((r) => r.resourceNames), 'cluster-wide reads');
  const sa = reader.find((o) => o.kind === 'ServiceAccount')!;
  t.is(sa.metadata.name, READER_SERVICE_ACCOUNT, 'the ServiceAccount create-remote-secret expects');
  t.is(sa.metadata.namespace, NAMESPACE);
  t.deepEqual(reader.find((o) => o.kind === 'ClusterRoleBinding')!.subjects, [{ kind: 'ServiceAccount', name: READER_SERVICE_ACCOUNT, namespace: NAMESPACE }]);
  const token = reader.find((o) => o.kind === 'Secret') as Obj & { type?: string; metadata: { annotations?: Record<string, string> } };
  t.is(token.metadata.name, READER_TOKEN_SECRET, 'the token Secret create-remote-secret reads');
  t.is(token.type, 'kubernetes.io/service-account-token');
  t.is(token.metadata.annotations?.['kubernetes.io/service-account.name'], READER_SERVICE_ACCOUNT, 'the token controller fills it with the reader\'s token');
});
