// The lab's Kubernetes API server (`nodemesh lab up --kubernetes`): a process of the lab
// that runs the wire-level stand-in the tests use (kube-apiserver.ts here — no API server
// can run on these machines), loaded with the lab's objects as a cluster would hold them, so
// the control plane runs `--source kubernetes` against it: the demo path and the cluster
// path are the same code. It lives beside the stand-in, in test/: production code never
// imports test code; the lab only runs this file (deploy/lab/lab-commands.ts, apiserverArgv).
//
//   node dist/test/helpers/kube-apiserver-process.js --config-dir DIR --kubeconfig FILE
//
// - Loads every document of the lab's config dir (the user's YAML completed with pod IPs,
//   ClusterIPs and node addresses: lab-config-dir.ts) as the object it is; a kind the
//   stand-in does not serve is named on stderr and left out.
// - Plays the EndpointSlice controller: the slices the Services' selectors imply, kept up to
//   date by informers over its own API (control/kube/informer.ts) as Pods and Services change.
// - Writes FILE, a kubeconfig for it (server, CA, token), once everything is loaded: the lab
//   waits for that file, and it is renamed into place, so a reader never sees half of it.
// - SIGTERM/SIGINT: stops the informers and the server, exits 0. The lab's cgroup owns the
//   process; `lab down` ends it like every lab process, also after a crash of `lab up`.
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KubeClient, loadKubeConfig } from '../../control/kube/kube-client.js';
import { Informer, type ResourceType } from '../../control/kube/informer.js';
import { KubeApiServerStandIn, STANDARD_TYPES, type KubeObject } from './kube-apiserver.js';
import { syncEndpointSlices } from './kube-cluster.js';

/** How long the slice controller waits after a Pod or Service event, so a burst is one sync. */
const SLICE_SYNC_DELAY_MS = 20;

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? undefined : process.argv[i + 1];
  if (!v) {
    process.stderr.write('usage: kube-apiserver-process --config-dir DIR --kubeconfig FILE\n');
    process.exit(2);
  }
  return v;
}

function say(fields: Record<string, unknown>, msg: string): void {
  process.stdout.write(`${JSON.stringify({ time: Date.now(), name: 'lab/apiserver', msg, ...fields })}\n`);
}

/** Every object of the config dir's YAML files, in file-name order, as the stand-in stores them. */
export function labObjects(configDir: string): { objects: KubeObject[]; skipped: string[] } {
  const served = new Set(STANDARD_TYPES.map((t) => `${t.group}/${t.kind}`));
  const objects: KubeObject[] = [];
  const skipped: string[] = [];
  for (const file of readdirSync(configDir).filter((f) => /\.ya?ml$/i.test(f)).sort()) {
    for (const doc of parseAllDocuments(readFileSync(path.join(configDir, file), 'utf8'))) {
      const o = doc.toJSON() as KubeObject | null;
      if (!o || typeof o !== 'object' || !o.metadata?.name || typeof o.kind !== 'string') continue;
      const group = typeof o.apiVersion === 'string' && o.apiVersion.includes('/') ? o.apiVersion.slice(0, o.apiVersion.lastIndexOf('/')) : '';
      if (!served.has(`${group}/${o.kind}`)) {
        skipped.push(`${file}: ${o.apiVersion} ${o.kind} ${o.metadata.name}`);
        continue;
      }
      objects.push(o);
    }
  }
  return { objects, skipped };
}

async function main(): Promise<void> {
  const configDir = arg('config-dir');
  const kubeconfig = arg('kubeconfig');
  const api = await KubeApiServerStandIn.start();
  const { objects, skipped } = labObjects(configDir);
  for (const o of objects) api.apply(o);
  syncEndpointSlices(api);
  for (const s of skipped) say({ object: s }, 'not loaded: the stand-in API server does not serve this kind');

  // the kubeconfig, renamed into place: its presence says the cluster is loaded
  const tmp = mkdtempSync(path.join(path.dirname(kubeconfig), '.kubeconfig-'));
  renameSync(api.writeKubeconfig(tmp), kubeconfig);
  rmSync(tmp, { recursive: true, force: true });
  say({ url: api.url, objects: objects.length, endpointSlices: api.list('EndpointSlice').length, kubeconfig }, 'API server stand-in serving');

  // the EndpointSlice controller, on informers over the server's own API
  const client = new KubeClient(loadKubeConfig({ kubeconfig }).kc);
  let timer: NodeJS.Timeout | undefined;
  const changed = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      syncEndpointSlices(api);
    }, SLICE_SYNC_DELAY_MS);
  };
  const watched = STANDARD_TYPES.filter((t) => t.kind === 'Pod' || t.kind === 'Service');
  const informers = watched.map((type) => new Informer({ type: type as ResourceType, client, onUpsert: changed, onDelete: changed, onSynced: () => undefined }));
  for (const i of informers) i.start();

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say({ signal }, 'stopping');
    clearTimeout(timer);
    await Promise.all(informers.map((i) => i.stop()));
    await api.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

if (process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  main().catch((err: unknown) => {
    process.stderr.write(`kube-apiserver-process: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
