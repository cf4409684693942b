// Waiting for the lab's parts: the control plane and the agents answer 200 on
// /healthz/ready (polled from the root netns over the lab bridge), and every pod that
// declares container ports listens on them (polled with `ss` inside the pod's netns).
// A process that exits while awaited fails the wait at once, with its log's last lines.
import http from 'node:http';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { parseHostPort } from '../../common/host-port.js';
import { READY_PATH } from './lab-commands.js';
import { NETNS_DIR } from './lab-network.js';
import { isAlive, logTail, run, waitFor } from './lab-processes.js';
import type { LabPodState } from './lab-state.js';

/** GET http://hostport/healthz/ready: the status code, or the connection error. */
export function probeReady(hostport: string, timeoutMs = 1_000): Promise<{ ok: boolean; detail: string }> {
  const address = parseHostPort(hostport);
  if (!address) return Promise.resolve({ ok: false, detail: `not a host:port: ${JSON.stringify(hostport)}` });
  return new Promise((resolve) => {
    const req = http.get({ host: address.host, port: address.port, path: READY_PATH, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      // 401/403: the agent's admin port serves its node and trusted networks only
      // (agent/admin/admin-access.ts); the lab's host is one, unless the agent was started without it
      const refused = res.statusCode === 401 || res.statusCode === 403 ? ' (refused: the lab host is not among the agent\'s --admin-trusted-networks)' : '';
      resolve({ ok: res.statusCode === 200, detail: `HTTP ${res.statusCode}${refused}` });
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', (err) => resolve({ ok: false, detail: err.message }));
  });
}

export interface ReadyTarget {
  /** what to call it in errors: `agent of node a`, `control plane` */
  what: string;
  hostport: string;
  pid: number;
  log: string;
  /** for a supervised process: whether the process it runs exited (the supervisor itself lives on) */
  exited?: () => Promise<boolean>;
}

export async function waitReady(t: ReadyTarget, timeoutMs: number): Promise<void> {
  let last = 'not probed yet';
  let died = false;
  const ok = await waitFor(async () => {
    if (!(await isAlive(t.pid)) || (await t.exited?.())) {
      died = true;
      return true;
    }
    const r = await probeReady(t.hostport);
    last = r.detail;
    return r.ok;
  }, timeoutMs, 200);
  if (died) {
    throw new NodemeshError('NM_ERR_LAB', `the ${t.what} (pid ${t.pid}) exited before it was ready; see its log ${t.log}:\n${await logTail(t.log)}`);
  }
  if (!ok) {
    throw new NodemeshError(
      'NM_ERR_LAB',
      `the ${t.what} is not ready after ${timeoutMs} ms (GET http://${t.hostport}${READY_PATH}: ${last}); see its log ${t.log}:\n${await logTail(t.log)}`,
    );
  }
}

/** TCP ports in LISTEN inside a netns. */
export async function listeningPorts(netns: string): Promise<Set<number>> {
  const { stdout } = await run('nsenter', [`--net=${path.join(NETNS_DIR, netns)}`, '--', 'ss', '-Hltn']);
  const ports = new Set<number>();
  for (const line of stdout.split('\n')) {
    const local = line.trim().split(/\s+/)[3];
    if (local) ports.add(Number(local.slice(local.lastIndexOf(':') + 1)));
  }
  return ports;
}

/** The processes listening on TCP `port` inside a netns (`ss -p`). */
export async function listenerPids(netns: string, port: number): Promise<number[]> {
  const { stdout } = await run('nsenter', [`--net=${path.join(NETNS_DIR, netns)}`, '--', 'ss', '-Hltnp', `sport = :${port}`]);
  return [...stdout.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
}

/** Waits until the pod listens on every TCP port its containers declare. */
export async function waitPodListening(pod: LabPodState, pids: Map<string, number>, timeoutMs: number): Promise<void> {
  const want = pod.containers.flatMap((c) => c.ports);
  if (want.length === 0) return;
  let missing = want;
  let dead: LabPodState['containers'][number] | undefined;
  const ok = await waitFor(async () => {
    for (const c of pod.containers) {
      const pid = pids.get(c.name);
      if (pid !== undefined && !(await isAlive(pid))) {
        dead = c;
        return true;
      }
    }
    const open = await listeningPorts(pod.netns);
    missing = want.filter((p) => !open.has(p));
    return missing.length === 0;
  }, timeoutMs, 100);
  const id = `${pod.namespace}/${pod.name}`;
  if (dead) {
    throw new NodemeshError('NM_ERR_LAB', `container ${dead.name} of pod ${id} exited (\`${dead.argv.join(' ')}\`, cwd the lab dir); see its log ${dead.log}:\n${await logTail(dead.log)}`);
  }
  if (!ok) {
    const logs = pod.containers.map((c) => c.log).join(', ');
    throw new NodemeshError('NM_ERR_LAB', `pod ${id} is not listening on port(s) ${missing.join(', ')} after ${timeoutMs} ms (declared in containers[].ports); see ${logs}:\n${await logTail(pod.containers[0]!.log)}`);
  }
}
