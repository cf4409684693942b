// A two-cluster lab: `nodemesh lab up -f DIR --name L` where DIR holds one directory of YAML
// per cluster (DIR/cluster-a/*.yaml, DIR/cluster-b/*.yaml; the directory name is the
// cluster's name). Each cluster is a lab of its own, named `L-<cluster>`, with its own slot
// (node subnet 172.31.<240+s>.0/24), its own pod CIDRs 10.(244+c).<node>.0/24, its own
// control plane (`--cluster`, `--network`, `--remote-cluster` naming the other's config dir,
// which stands in for Istio's remote secret, and the plug-in CA's intermediate of the
// cluster), its agents and its east-west gateway (lab-gateway.ts). The lab `L` itself is a
// record of its clusters, of the shared root (lab-plugin-ca.ts) and of the router joining the
// networks only through the gateways (lab-wan.ts). `lab down --name L` removes the clusters
// first, then the router and the record; a crash at any step leaves a state that says what
// to remove (each cluster's state names its parent, the parent's names its clusters).
//
// Order: models (fail before anything is made) → the old lab of this name → the record →
// each cluster planned (slot, addresses, gateway address) and recorded → the shared root →
// each cluster's network, cgroups, config dir → routes to the other gateways, the router →
// each cluster's control plane, agents, pods (the gateways among them) → gateways ready.
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { clusterNetwork, findGateways, planGateways } from './lab-gateway.js';
import { DEFAULT_CLI } from './lab-commands.js';
import { loadLabModel, type LabModel } from './lab-model.js';
import { pluginCaFiles, writePluginCa } from './lab-plugin-ca.js';
import { waitReady } from './lab-readiness.js';
import { labStateDir, readLabState, validateLabName, writeLabState, type LabClusterState, type LabState } from './lab-state.js';
import { teardownLab } from './lab-teardown.js';
import { createWan, planWan, routeNodesToGateways, WAN_HOST } from './lab-wan.js';
import { buildLab, failLab, markReady, prepareLab, runLab, type LabUpOptions, type PreparedLab } from './lab-up.js';

const log = logger('lab/multicluster');

const CLUSTERS = 2;

/** The cluster directories of a two-cluster lab directory, checked. */
async function clusterDirs(root: string, name: string): Promise<string[]> {
  const dirs = (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  if (dirs.length !== CLUSTERS) {
    throw new NodemeshError('NM_ERR_LAB', `${root}: a multi-cluster lab directory holds one directory of YAML per cluster, ${CLUSTERS} of them (found ${dirs.length}: ${dirs.join(', ') || 'none'})`);
  }
  for (const d of dirs) {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(d)) throw new NodemeshError('NM_ERR_LAB', `${path.join(root, d)}: a cluster's directory name is its cluster name: lowercase letters, digits and '-'`);
    validateLabName(clusterLabName(name, d));
  }
  return dirs;
}

export function clusterLabName(lab: string, cluster: string): string {
  return `${lab}-${cluster}`;
}

export async function multiclusterUp(opts: LabUpOptions & { name: string }): Promise<LabState> {
  const { name } = opts;
  const root = path.resolve(opts.dir);
  const dirs = await clusterDirs(root, name);
  if (opts.kubernetes) throw new NodemeshError('NM_ERR_LAB', 'lab up --kubernetes: a two-cluster lab reads its clusters from files only');
  if (opts.agents === false || opts.control === false) throw new NodemeshError('NM_ERR_LAB', 'a two-cluster lab runs its control planes and agents (its gateways are agents)');
  const cli = opts.cli ?? DEFAULT_CLI;
  const step = opts.progress ?? (() => {});
  // every cluster's YAML and gateway checked before anything is touched
  for (const d of dirs) {
    const model = await loadLabModel(path.join(root, d));
    clusterNetwork(d, model, findGateways(model));
  }

  await teardownLab({ name });
  const stateDir = labStateDir(name);
  const parent: LabState = {
    version: 1,
    name,
    status: 'creating',
    slot: null,
    dir: root,
    createdAt: new Date().toISOString(),
    stateDir,
    configDir: '',
    logDir: path.join(stateDir, 'logs'),
    agents: true,
    control: true,
    cgroupRoot: null,
    bridge: null,
    controlAddress: null,
    nodes: [],
    pods: [],
    services: [],
    processes: [],
    multicluster: { clusters: dirs.map((d) => ({ name: d, lab: clusterLabName(name, d) })), wan: { netns: `nm-${name}-wan`, legs: [] }, caDir: path.join(stateDir, 'plugin-ca') },
  };
  await mkdir(stateDir, { recursive: true });
  await writeLabState(parent); // before any cluster: a crash from here on is removed through it
  const mc = parent.multicluster!;

  const clusters: PreparedLab[] = [];
  try {
    for (const [index, d] of dirs.entries()) {
      const cluster: LabClusterState = { name: d, network: '', parent: name, index, remotes: [], pluginCa: pluginCaFiles(mc.caDir, d), wanIp: '', remoteGateways: [], remoteSubnets: [], gateways: [] };
      step(`cluster ${d}: planning`);
      const prepared = await prepareLab(clusterLabName(name, d), { ...opts, dir: path.join(root, d) }, cluster);
      clusters.push(prepared);
      const gateways = findGateways(prepared.model);
      cluster.network = clusterNetwork(d, prepared.model, gateways);
      const subnet = prepared.state.bridge!.cidr.slice(0, prepared.state.bridge!.cidr.lastIndexOf('.'));
      cluster.wanIp = `${subnet}.${WAN_HOST}`;
      planGateways(prepared.state, gateways, cli);
    }
    const networks = clusters.map((c) => c.state.cluster!.network);
    if (new Set(networks).size !== networks.length) throw new NodemeshError('NM_ERR_LAB', `the clusters name the same network (${networks.join(', ')}): the lab joins networks only through gateways; give each cluster its own`);
    for (const c of clusters) {
      const others = clusters.filter((o) => o !== c).map((o) => o.state);
      const k = c.state.cluster!;
      k.remotes = others.map((o) => ({ name: o.cluster!.name, network: o.cluster!.network, configDir: o.configDir }));
      k.remoteGateways = others.flatMap((o) => o.cluster!.gateways.map((g) => g.address));
      k.remoteSubnets = others.map((o) => o.bridge!.cidr);
      await writeLabState(c.state); // every resource of the cluster is recorded before it exists
    }
    mc.wan = planWan(name, clusters.map((c) => c.state));
    await writeLabState(parent);

    step(`shared root CA, one intermediate per cluster (${dirs.join(', ')})`);
    await writePluginCa(mc.caDir, dirs);
    for (const c of clusters) await buildLab(c.state, c.model, opts);
    step(`the link between the networks (${mc.wan.netns}): TCP to the gateways' 15008 only`);
    for (const c of clusters) await routeNodesToGateways(c.state);
    await createWan(mc.wan, clusters.flatMap((c) => c.state.cluster!.gateways.map((g) => g.address)));
    for (const c of clusters) {
      step(`cluster ${c.state.cluster!.name} (network ${c.state.cluster!.network})`);
      await runLab(c.state, c.model, opts, withRemoteServices(c, clusters));
    }
    step('east-west gateways');
    for (const c of clusters) {
      for (const g of c.state.cluster!.gateways) {
        const pid = c.state.processes.find((p) => p.role === 'pod' && p.name.startsWith(`${g.namespace}/${g.pod}/`))!.pid;
        await waitReady({ what: `east-west gateway ${g.namespace}/${g.service} of cluster ${c.state.cluster!.name}`, hostport: g.admin, pid, log: g.log }, opts.timeouts?.agentsMs ?? 60_000);
      }
    }
    for (const c of clusters) await markReady(c.state);
    await markReady(parent);
    log.info({ lab: name, clusters: dirs }, 'two-cluster lab ready');
    return parent;
  } catch (err) {
    for (const c of clusters) await failLab(c.state, err);
    throw await failLab(parent, err);
  }
}

/**
 * A pod's /etc/hosts names its own cluster's Services and the other clusters' Services it
 * has none of by that name (namespace sameness: one name, one Service), at the address the
 * control plane gives such a Service: the remote clusterIP, unless a local Service holds it.
 * Istio's DNS proxy answers these names in a real mesh; headless remote Services are left out.
 */
function withRemoteServices(self: PreparedLab, all: PreparedLab[]): LabModel {
  const names = new Set(self.model.services.map((s) => `${s.namespace}/${s.name}`));
  const ips = new Set(self.model.services.map((s) => s.clusterIP));
  const extra = [];
  for (const o of all) {
    if (o === self) continue;
    for (const s of o.model.services) {
      const key = `${s.namespace}/${s.name}`;
      if (names.has(key) || s.clusterIP === 'None' || ips.has(s.clusterIP)) continue;
      names.add(key);
      ips.add(s.clusterIP);
      extra.push(s);
    }
  }
  return { ...self.model, services: [...self.model.services, ...extra] };
}

/** The clusters of a two-cluster lab, as their labs' states (in the order of their directories). */
export async function labClusters(name: string): Promise<LabState[]> {
  const parent = await readLabState(name);
  if (!parent?.multicluster) throw new NodemeshError('NM_ERR_LAB', `lab ${name} is not a two-cluster lab`);
  const out: LabState[] = [];
  for (const c of parent.multicluster.clusters) {
    const s = await readLabState(c.lab);
    if (!s) throw new NodemeshError('NM_ERR_LAB', `lab ${name}: cluster ${c.name} (lab ${c.lab}) has no state`);
    out.push(s);
  }
  return out;
}
