// Config convergence at scale, in a lab of its own ("bench-cp"): the control plane with one
// lab node per agent, no pods running; the scale (1,000 Services with 10 endpoints each:
// 10,000 Pods spread over the nodes, as the API server would serve them) is written into its
// config directory. The agents are discovery clients (pods/discovery-watcher.ts: the agent's
// own watchSnapshots over its TLS with the node's credential, building the agent's
// ProxyState from each snapshot), one process per node in that node's netns: they measure the
// control plane's push and the agents' decode and state build, not datapath work.
//
// A config change is one Service rewritten in its own file (as `kubectl apply` of one
// object); converged = every agent has applied a version newer than before the change. The
// snapshot's size on the wire is the protobuf message as one more Watch receives it, raw.
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { intToIpv4, ipv4ToInt } from '../../../common/ip.js';
import { ControlPlaneCredentials } from '../../../control/api/control-credentials.js';
import { discoveryService } from '../../../control/api/snapshot.js';
import { labDown, labUp, type LabState } from '../../../deploy/lab/lab.js';
import { benchTempDir, killGroup, labSpawn, podProgram, removeBenchTempDir } from '../lab-exec.js';
import { scenario, type ScenarioResult } from '../scenario.js';
import type { Settings } from '../settings.js';
import { summarize } from '../stats.js';

export const CP_LAB = 'bench-cp';

/** The scale, as the lab would complete it for the control plane: Pods with status, IPs, Ready. */
export function scaleDocuments(nodes: { name: string; ip: string }[], services: number, perService: number): Record<string, unknown>[] {
  const docs: Record<string, unknown>[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'scale', labels: { 'nodemesh.io/mesh': 'enabled' } } },
  ];
  const first = ipv4ToInt('10.128.0.1')!;
  let k = 0;
  for (let s = 0; s < services; s++) {
    docs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${s}`, namespace: 'scale' },
      spec: {
        clusterIP: intToIpv4(ipv4ToInt('10.100.0.1')! + s),
        selector: { app: `svc-${s}` },
        ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      },
    });
    for (let e = 0; e < perService; e++, k++) {
      const node = nodes[k % nodes.length]!;
      const ip = intToIpv4(first + k);
      docs.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `svc-${s}-${e}`, namespace: 'scale', labels: { app: `svc-${s}` } },
        spec: {
          nodeName: node.name,
          serviceAccountName: `svc-${s}`,
          containers: [{ name: 'app', image: 'app', ports: [{ containerPort: 8080 }] }],
        },
        status: {
          phase: 'Running',
          podIP: ip,
          podIPs: [{ ip }],
          hostIP: node.ip,
          hostIPs: [{ ip: node.ip }],
          conditions: [{ type: 'Ready', status: 'True' }],
        },
      });
    }
  }
  return docs;
}

const yamlOf = (docs: Record<string, unknown>[]) => docs.map((d) => `---\n${stringify(d)}`).join('');

/** Replaces a config file whole, at once (write then rename), as the lab's tests do. */
async function replaceFile(dir: string, name: string, text: string): Promise<number> {
  const tmp = path.join(dir, `.${name}.tmp`);
  await writeFile(tmp, text);
  const t = Date.now();
  await rename(tmp, path.join(dir, name));
  return t;
}

interface Applied {
  node: string;
  version: number;
  appliedAt: number;
  applyMs: number;
  workloads: number;
}

/** The first snapshot's size as the wire carries it: a Watch whose messages are left as bytes. */
async function snapshotWireBytes(state: LabState, node: string): Promise<number> {
  const creds = new ControlPlaneCredentials({
    rootCertFile: path.join(state.stateDir, 'ca', 'trust-bundle.pem'),
    nodeCredentialDir: path.join(state.stateDir, 'node-credentials', node),
  });
  const watch = Object.values(discoveryService().service).find((m) => m.path === '/nodemesh.v1.Discovery/Watch')!;
  const Raw = grpc.makeGenericClientConstructor({ watch: { ...watch, responseDeserialize: (b: Buffer) => b } }, 'RawDiscovery');
  const client = new Raw(state.controlAddress!.grpc, creds.credentials, { 'grpc.max_receive_message_length': -1 }) as unknown as {
    watch(req: unknown): grpc.ClientReadableStream<Buffer>;
    close(): void;
  };
  try {
    return await new Promise<number>((resolve, reject) => {
      const call = client.watch({ node, knownVersion: '0' });
      const timer = setTimeout(() => reject(new Error('no snapshot on the raw Watch within 60 s')), 60_000);
      call.once('data', (b: Buffer) => {
        clearTimeout(timer);
        resolve(b.length);
        call.cancel();
      });
      call.on('error', (err: grpc.ServiceError) => {
        clearTimeout(timer);
        if (err.code !== grpc.status.CANCELLED) reject(err);
      });
    });
  } finally {
    client.close();
    creds.close();
  }
}

/** The control plane's pushes by type (whole, delta) from its pilot_xds_config_size_bytes: count and bytes. */
async function pushSizes(state: LabState): Promise<Record<string, { count: number; bytes: number }>> {
  const text = await (await fetch(`http://${state.controlAddress!.admin}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const out: Record<string, { count: number; bytes: number }> = {};
  for (const m of text.matchAll(/^pilot_xds_config_size_bytes_(sum|count)\{type="([^"]+)"\} (\S+)$/gm)) {
    const e = (out[m[2]!] ??= { count: 0, bytes: 0 });
    if (m[1] === 'sum') e.bytes = Number(m[3]);
    else e.count = Number(m[3]);
  }
  return out;
}

export function controlPlaneScenario(s: Settings, log: (m: string) => void): Promise<ScenarioResult> {
  const { services, endpointsPerService: per, agents, changes } = s.controlPlane;
  const method =
    `${services.toLocaleString('en-US')} Services × ${per} endpoints (${(services * per).toLocaleString('en-US')} Pods) over ${agents} nodes in the control plane's config directory; ${agents} agents as discovery clients ` +
    "(the agent's watchSnapshots and ProxyState, one process per node netns, no datapath). " +
    `Up to ${changes} changes (for at most ${s.controlPlane.maxSeconds} s) of one Service each (its own file, replaced whole), one at a time: time from the file's rename until the last agent applied the new version. Snapshot size = the protobuf message of a raw Watch.`;
  return scenario('control-plane', 'Control plane: config convergence', method, log, async (out) => {
    const dir = await benchTempDir('cp-');
    const watchers: ChildProcess[] = [];
    try {
      const nodes = Array.from({ length: agents }, (_, i) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: `cp-${i}` } }));
      await writeFile(path.join(dir, 'nodes.yaml'), yamlOf(nodes));
      const state = await labUp({ dir, name: CP_LAB, agents: false, control: true });
      const applied: Applied[] = [];
      let streamErrors = 0;
      const errorSamples: string[] = [];
      for (const n of state.nodes) {
        const w = await labSpawn(CP_LAB, `node/${n.name}`, [
          'node',
          podProgram('discovery-watcher.js'),
          state.controlAddress!.grpc,
          n.name,
          path.join(state.stateDir, 'node-credentials', n.name),
          path.join(state.stateDir, 'ca', 'trust-bundle.pem'),
        ]);
        watchers.push(w);
        let buf = '';
        w.stdout!.setEncoding('utf8').on('data', (d: string) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line.startsWith('{')) applied.push(JSON.parse(line) as Applied);
          }
        });
        // each line is a failed or ended stream (then re-opened with backoff) or a refused snapshot
        w.stderr!.setEncoding('utf8').on('data', (d: string) => {
          // the watcher's own reports are "NODE: message"; anything else (Node's warnings) is not a stream error
          for (const line of d.split('\n').filter((l) => l.startsWith(`${n.name}: `))) {
            streamErrors++;
            if (errorSamples.length < 5) errorSamples.push(`${new Date().toISOString().slice(11, 23)} ${line.slice(0, 300)}`);
          }
        });
      }
      /** Resolves when every node has applied a snapshot satisfying `ok`; the latest appliedAt among them. */
      const converged = async (ok: (a: Applied) => boolean, timeoutMs: number, what: string) => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const first = new Map<string, Applied>();
          for (const a of applied) if (ok(a) && !first.has(a.node)) first.set(a.node, a);
          if (first.size === state.nodes.length) return [...first.values()];
          if (Date.now() > deadline)
            throw new Error(`${what}: ${first.size} of ${state.nodes.length} agents applied it within ${timeoutMs / 1000} s`);
          if (watchers.some((w) => w.exitCode !== null)) throw new Error(`a discovery client exited during ${what}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      await converged(() => true, 60_000, 'the first snapshot');

      // the scale: the initial load is a change too, the largest
      const workloads = services * per;
      // in files of at most 100 Services with their Pods (~0.45 MiB each): the control plane
      // refuses a file over --max-file-size (4 MiB), and a real config directory is split too
      const docs = scaleDocuments(state.nodes, services, per);
      const perFile = 1 + 100 * (1 + per);
      const files = Math.ceil(docs.length / perFile);
      let tLoad = 0;
      for (let f = 0; f < files; f++) {
        const t = await replaceFile(
          state.configDir,
          `scale-${String(f).padStart(3, '0')}.yaml`,
          yamlOf(docs.slice(f * perFile, (f + 1) * perFile)),
        );
        if (f === 0) tLoad = t;
      }
      const loaded = await converged((a) => a.workloads >= workloads, 300_000, `${workloads} workloads`);
      const loadSeconds = (Math.max(...loaded.map((a) => a.appliedAt)) - tLoad) / 1000;
      log(
        `  ${services} Services / ${workloads} endpoints applied by all ${agents} agents ${loadSeconds.toFixed(1)} s after the first of ${files} files appeared`,
      );

      const samples: number[] = [];
      const perAgent: number[] = [];
      const applyMs: number[] = [];
      const tChanges = performance.now();
      let k = 0;
      for (; k < changes && (k === 0 || performance.now() - tChanges < s.controlPlane.maxSeconds * 1000); k++) {
        const before = Math.max(...applied.map((a) => a.version));
        const probe = {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'probe', namespace: 'scale' },
          spec: { selector: { app: 'svc-0' }, ports: [{ name: 'http', port: 8000 + k, targetPort: 8080 }] },
        };
        const t0 = await replaceFile(state.configDir, 'probe.yaml', yamlOf([probe]));
        const got = await converged((a) => a.version > before, 60_000, `change ${k + 1}`);
        samples.push(Math.max(...got.map((a) => a.appliedAt)) - t0);
        for (const a of got) {
          perAgent.push(a.appliedAt - t0);
          applyMs.push(a.applyMs);
        }
        await new Promise((r) => setTimeout(r, 300)); // past the source's debounce: one change per version
      }
      const wire = await snapshotWireBytes(state, state.nodes[0]!.name);
      const pushes = await pushSizes(state);
      const conv = summarize(samples);
      out.data = {
        services,
        endpoints: workloads,
        agents,
        agentsAre: 'discovery clients (watchSnapshots + ProxyState), not full agents',
        changes: k,
        initialLoadSeconds: loadSeconds,
        convergenceMs: { p50: conv.p50, p90: conv.p90, p99: conv.p99, max: conv.max, n: conv.n },
        perAgentMs: summarize(perAgent),
        applyMs: summarize(applyMs),
        snapshotBytes: wire,
        pushes,
        streamErrors,
        streamErrorSamples: errorSamples,
        changeMs: samples,
      };
      if (streamErrors > 0)
        out.notes.push(`the agents reported ${streamErrors} failed or ended Watch streams (re-opened with backoff) during the scenario`);
      if (k < changes) out.notes.push(`${k} of ${changes} changes fitted in the scenario's ${s.controlPlane.maxSeconds} s`);
      if (k < 100) out.notes.push(`the p99 of ${k} changes is their maximum`);
      const delta = pushes['nodemesh.snapshot.delta'];
      log(
        `  convergence p50 ${conv.p50} ms, p99 ${conv.p99} ms (max of ${k} changes); snapshot ${(wire / 2 ** 20).toFixed(2)} MiB on the wire` +
          (delta ? `, ${delta.count} deltas of ${Math.round(delta.bytes / delta.count)} bytes on average` : ', no deltas'),
      );
    } finally {
      for (const w of watchers) {
        w.stdin?.end();
        killGroup(w);
      }
      await labDown({ name: CP_LAB }).catch((err: unknown) => out.errors.push(`lab down ${CP_LAB}: ${(err as Error).message}`));
      await removeBenchTempDir(dir);
    }
  });
}
