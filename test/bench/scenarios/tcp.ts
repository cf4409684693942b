// The TCP scenarios of the main lab:
//   bulk — one connection sending as fast as the path takes, for a few seconds, to the
//     backend's sink (through HBONE for nodemesh L4, the TLS hop for the HAProxy pair);
//   capture — new connections one after the other from node-a to an unmeshed echo server on
//     node-b, through the node proxy's passthrough: captured by the eBPF connect4 redirect
//     (the meshed client) or by an iptables DNAT in node-a's netns (bench-lab.ts; the proxy
//     then reads the original destination from conntrack), against no capture at all;
//   held connections — the agents' memory with N connections held through the L4 path.
import { scrape, sumMetric } from '../../../cli/prom-text.js';
import type { BenchLab } from '../bench-lab.js';
import { killGroup, labSpawn, podProgram, rssBytes } from '../lab-exec.js';
import { bulk, connects } from '../load-tools.js';
import { cpuWindow, mtlsProof } from '../proxies.js';
import { inRounds } from '../rounds.js';
import { scenario, type ScenarioResult } from '../scenario.js';
import { BACKEND_PORTS, type Settings } from '../settings.js';
import { median } from '../stats.js';

export function bulkScenario(lab: BenchLab, s: Settings, log: (m: string) => void): Promise<ScenarioResult> {
  const warm = s.bulk.warmupSeconds > 0 ? `, right after ${s.bulk.warmupSeconds} s of the same load unmeasured` : '';
  const method = `One TCP connection writing 256 KiB chunks for ${s.bulk.seconds} s${warm}, then half-closing; the sink answers the byte count it received: throughput = bytes received / time until that answer. The proxies' CPU per GB carried.`;
  return scenario('bulk', 'Bulk TCP throughput', method, log, async (out) => {
    const cells = await inRounds({
      condition: 'one connection',
      variants: s.bulk.variants,
      rounds: s.rounds,
      ratioOf: ['mbPerSecond', 'cpuSPerGB'],
      log,
      measure: async (v) => {
        if (s.bulk.warmupSeconds > 0) await bulk(lab, v, s.bulk.warmupSeconds);
        const cpu = await cpuWindow(lab, v);
        const proof = await mtlsProof(lab, v);
        const r = await bulk(lab, v, s.bulk.seconds);
        const { srcCpuS, dstCpuS } = await cpu.stop();
        const mtlsCounted = await proof.check();
        return {
          mbPerSecond: r.mbPerSecond,
          gbitPerSecond: r.gbitPerSecond,
          bytes: r.receivedBytes,
          srcCpuS,
          dstCpuS,
          cpuSPerGB: (srcCpuS + dstCpuS) / (r.receivedBytes / 1e9),
          mtlsCounted,
        };
      },
    });
    out.cells.push(...cells);
    for (const c of cells) log(`  ${c.variant.padEnd(15)} ${c.metrics.mbPerSecond?.median.toFixed(0)} MB/s`);
  });
}

type CapturePath = 'direct' | 'ebpf' | 'iptables';
const CAPTURE_CLIENT: Record<CapturePath, string> = { direct: 'plain/client', ebpf: 'mesh/client', iptables: 'plain/ipt-client' };
const CAPTURE_SOURCE: Record<CapturePath, string | undefined> = { direct: undefined, ebpf: 'client', iptables: 'ipt-client' };

export function captureScenario(lab: BenchLab, s: Settings, log: (m: string) => void): Promise<ScenarioResult> {
  const method =
    `${s.capture.connections} new connections one after the other from a node-a pod to an unmeshed echo server on node-b: time to connect() and to the first echoed byte. ` +
    'ebpf: a meshed pod, redirected by cgroup/connect4 into the node proxy, which reads the original destination from the eBPF getsockopt hook; ' +
    "iptables: an unmeshed pod whose SYNs node-a's netns DNATs (nat PREROUTING) to the same proxy port, which reads it from conntrack; both then take the same passthrough path. direct: no proxy.";
  return scenario('capture', 'Capture cost: eBPF redirect vs iptables', method, log, async (out) => {
    const dst = lab.pod('plain/plain-backend').ip;
    const admin = lab.node('node-a').agentAdmin;
    const counted = async (source: string) =>
      sumMetric(await scrape(admin), 'istio_tcp_connections_opened_total', {
        reporter: 'source',
        source_workload: source,
        destination_service: `${dst}:${BACKEND_PORTS.echo}`,
      });
    const cells = await inRounds<CapturePath>({
      condition: 'new connection',
      variants: ['direct', 'ebpf', 'iptables'],
      rounds: s.rounds,
      versus: (p) => (p === 'ebpf' ? 'iptables' : undefined),
      ratioOf: ['connectP50', 'firstByteP50', 'firstByteP99'],
      addedOf: ['connectP50', 'firstByteP50', 'firstByteP99'],
      log,
      measure: async (p) => {
        const source = CAPTURE_SOURCE[p];
        const before = source ? await counted(source) : 0;
        const r = await connects(lab, CAPTURE_CLIENT[p], dst, BACKEND_PORTS.echo, s.capture.connections);
        if (r.errors > 0) throw new Error(`${p}: ${r.errors} of ${r.connections} connections failed`);
        // the proxy carried every one of them (and direct went around it)
        if (source) {
          const n = (await counted(source)) - before;
          if (n < r.connections)
            throw new Error(`${p}: the node proxy counted ${n} of ${r.connections} connections: the capture missed some`);
        }
        return {
          connectP50: r.connectMs.p50,
          connectP99: r.connectMs.p99,
          firstByteP50: r.firstByteMs.p50,
          firstByteP90: r.firstByteMs.p90,
          firstByteP99: r.firstByteMs.p99,
        };
      },
    });
    out.cells.push(...cells);
    for (const c of cells)
      log(
        `  ${c.variant.padEnd(9)} connect p50 ${c.metrics.connectP50?.median.toFixed(3)} ms, first byte p50 ${c.metrics.firstByteP50?.median.toFixed(3)} ms p99 ${c.metrics.firstByteP99?.median.toFixed(3)} ms`,
      );
  });
}

/** Median of a few RSS readings a second apart (the heap breathes between collections). */
async function steadyRss(pid: number, samples: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 1000));
    xs.push(await rssBytes(pid));
  }
  return median(xs);
}

export function heldConnectionsScenario(lab: BenchLab, s: Settings, log: (m: string) => void): Promise<ScenarioResult> {
  const n = s.held.connections;
  const method = `${n.toLocaleString('en-US')} TCP connections opened from the meshed client through the L4 path (HBONE) to the backend's echo port, each proven end to end by one echoed byte, and held (the agents' per-source connection limit raised above ${n.toLocaleString('en-US')} for the bench); both agents' RSS (/proc/<pid>/status, median of ${s.held.samples} readings) before, ${s.held.settleSeconds} s into holding them, and ${s.held.settleSeconds * 2.5} s after closing them.`;
  return scenario('held-connections', `Agent memory under ${n.toLocaleString('en-US')} connections`, method, log, async (out) => {
    const pids = await lab.agentPids();
    const mb = (b: number) => b / 2 ** 20;
    const before: Record<string, number> = {};
    for (const [node, pid] of Object.entries(pids)) before[node] = await steadyRss(pid, s.held.samples);
    const proof = await mtlsProof(lab, 'nm-l4');
    const t = lab.target('nm-l4', 'echo');
    const client = await labSpawn(lab.name, 'mesh/client', [
      'node',
      podProgram('tcp-clients.js'),
      'hold',
      t.host,
      String(t.port),
      String(n),
    ]);
    try {
      let stdout = '';
      client.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      client.stderr!.resume();
      const line = async (key: string, timeoutMs: number): Promise<Record<string, unknown>> => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const found = stdout.split('\n').find((l) => l.includes(`"${key}"`));
          if (found) return JSON.parse(found) as Record<string, unknown>;
          if (client.exitCode !== null)
            throw new Error(`the holding client exited ${client.exitCode} before reporting ${key}: ${stdout.slice(-300)}`);
          if (Date.now() > deadline) throw new Error(`the holding client did not report ${key} within ${timeoutMs} ms`);
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      const held = (await line('held', 60_000 + n * 30)) as Record<string, number> & { reasons?: Record<string, number> };
      await proof.check();
      log(
        `  ${held.held} connections held (${held.errors} failed${held.errors ? `: ${JSON.stringify(held.reasons)}` : ''}) after ${held.seconds?.toFixed(1)} s`,
      );
      await new Promise((r) => setTimeout(r, s.held.settleSeconds * 1000));
      const during: Record<string, number> = {};
      for (const [node, pid] of Object.entries(pids)) during[node] = await steadyRss(pid, s.held.samples);
      client.stdin!.end();
      await line('closed', 60_000);
      await new Promise((r) => setTimeout(r, s.held.settleSeconds * 2500));
      const after: Record<string, number> = {};
      for (const [node, pid] of Object.entries(pids)) after[node] = await steadyRss(pid, s.held.samples);
      const perNode = Object.fromEntries(
        Object.keys(pids).map((node) => [
          node,
          {
            rssBeforeMB: mb(before[node]!),
            rssHeldMB: mb(during[node]!),
            rssAfterMB: mb(after[node]!),
            bytesPerConnection: (during[node]! - before[node]!) / Math.max(1, held.held!),
          },
        ]),
      );
      out.data = {
        connections: n,
        held: held.held,
        failed: held.errors,
        failures: held.reasons ?? {},
        openSeconds: held.seconds,
        agents: perNode,
      };
      if (held.held! < n)
        out.notes.push(
          `only ${held.held} of ${n} connections could be opened and held (${held.errors} failed: ${JSON.stringify(held.reasons)}): a finding about the L4 path, not a failure of the suite`,
        );
      for (const [node, v] of Object.entries(perNode))
        log(
          `  ${node}: RSS ${v.rssBeforeMB.toFixed(1)} → ${v.rssHeldMB.toFixed(1)} → ${v.rssAfterMB.toFixed(1)} MB, ${(v.bytesPerConnection / 1024).toFixed(1)} KiB per connection`,
        );
    } finally {
      killGroup(client);
    }
  });
}
