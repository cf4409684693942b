// Keeps the datapath's set of enrolled network namespaces equal to the meshed pods of this
// node in the current snapshot, each with its fail mode. Opt-in and fail mode are resolved
// by the control plane (Workload.meshed, Workload.failOpen); here a workload is matched to
// its netns by pod IP. The chained CNI plugin (cni/, served by cni-server.ts) enrolls a
// pod's netns by path before the pod's first instruction runs; such an entry stays until
// DEL, until its netns is gone, or until the snapshot says the pod is not meshed: the scan,
// which finds a pod by IP only once the snapshot has it, never drops it meanwhile.
import { stat } from 'node:fs/promises';
import { logger } from '../../common/log.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import type { Datapath } from './redirect.js';
import { enrolledPods } from '../telemetry/metrics.js';
import type { PodNetnsScanner } from './pod-netns.js';

const log = logger('agent/enrollment');

export interface EnrolledPod {
  uid: string;
  ip: string;
  netns: string;
  cookie: bigint;
  failOpen: boolean;
  /** set when the CNI plugin enrolled it (ADD): its sandbox, and the netns file's inode */
  cni?: { containerId: string; inode: number };
}

export class Enrollment {
  /** by netns path */
  private readonly enrolled = new Map<string, EnrolledPod>();
  private running: Promise<void> = Promise.resolve();
  private reconciledOnce = false;
  /** namespaces an earlier agent left enrolled in the pinned map when this one started */
  readonly adopted: number;

  constructor(
    private readonly node: string,
    private readonly datapath: Datapath,
    private readonly scanner: PodNetnsScanner,
  ) {
    this.adopted = datapath.enrolled().length;
  }

  get ready(): boolean {
    return this.reconciledOnce;
  }

  list(): EnrolledPod[] {
    return [...this.enrolled.values()];
  }

  /** Serialized: a reconcile never runs concurrently with another, nor with a CNI call. */
  reconcile(snapshot: Snapshot): Promise<void> {
    return this.serialized(() => this.reconcileNow(snapshot)).catch((err: unknown) => {
      log.error({ err }, 'enrollment reconcile failed; will retry');
    });
  }

  /** The CNI plugin's ADD: enrolls the netns at `netns` now; rejects when it cannot. */
  enrollSandbox(netns: string, containerId: string, pod: { uid: string; ip: string; failOpen: boolean }): Promise<EnrolledPod> {
    return this.serialized(async () => {
      const { ino } = await stat(netns);
      for (const [p, have] of this.enrolled) {
        // a scan found it first under another path (/run/netns vs /var/run/netns)
        if (p !== netns && have.cni === undefined && (await inodeOf(p)) === ino) this.enrolled.delete(p);
      }
      const cookie = this.datapath.enroll(netns, { failOpen: pod.failOpen });
      const entry: EnrolledPod = { ...pod, netns, cookie, cni: { containerId, inode: ino } };
      this.enrolled.set(netns, entry);
      enrolledPods.set(this.enrolled.size);
      log.info({ pod: pod.uid, netns, containerId, cookie: String(cookie), failOpen: pod.failOpen }, 'pod enrolled by the CNI plugin');
      return entry;
    });
  }

  /** The CNI plugin's DEL: releases what ADD enrolled for this sandbox; false if nothing. */
  releaseSandbox(containerId: string): Promise<boolean> {
    return this.serialized(async () => {
      for (const [p, pod] of this.enrolled) {
        if (pod.cni?.containerId !== containerId) continue;
        this.datapath.unenroll(pod.cookie);
        this.enrolled.delete(p);
        enrolledPods.set(this.enrolled.size);
        log.info({ pod: pod.uid, netns: p, containerId }, 'pod released by the CNI plugin');
        return true;
      }
      return false;
    });
  }

  /** The enrolled entry of this netns file (by inode: the same netns under any path). */
  async lookup(netns: string): Promise<EnrolledPod | undefined> {
    const ino = await inodeOf(netns);
    if (ino === undefined) return undefined;
    for (const [p, pod] of this.enrolled) if ((pod.cni?.inode ?? (await inodeOf(p))) === ino) return pod;
    return undefined;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.running.then(fn);
    this.running = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  private async reconcileNow(snapshot: Snapshot): Promise<void> {
    const wanted = new Map<string, { uid: string; failOpen: boolean }>(); // by ip
    for (const w of snapshot.workloads) if (w.node === this.node && w.meshed && w.ip) wanted.set(w.ip, { uid: w.uid, failOpen: w.failOpen });

    const seen = new Set<string>();
    // what the CNI plugin enrolled stays until DEL, its netns is gone, or the snapshot says no
    const byUid = new Map(snapshot.workloads.map((w) => [w.uid, w]));
    const cniInodes = new Set<number>();
    for (const [p, pod] of this.enrolled) {
      if (!pod.cni) continue;
      const w = byUid.get(pod.uid);
      if ((await inodeOf(p)) !== pod.cni.inode || (w && !w.meshed)) continue; // not seen: released below
      seen.add(p);
      cniInodes.add(pod.cni.inode);
      if (w && (w.failOpen !== pod.failOpen || w.ip !== pod.ip)) {
        pod.cookie = this.datapath.enroll(p, { failOpen: w.failOpen });
        pod.failOpen = w.failOpen;
        pod.ip = w.ip;
      }
    }
    for (const ns of await this.scanner.scan()) {
      if (cniInodes.has(ns.inode)) continue;
      const ip = ns.ipv4.find((a) => wanted.has(a));
      if (!ip) continue;
      seen.add(ns.path);
      const want = wanted.get(ip)!;
      const have = this.enrolled.get(ns.path);
      if (have && have.ip === ip && have.failOpen === want.failOpen) continue;
      const cookie = this.datapath.enroll(ns.path, { failOpen: want.failOpen });
      const pod = { uid: want.uid, ip, netns: ns.path, cookie, failOpen: want.failOpen };
      this.enrolled.set(ns.path, pod);
      log.info({ pod: pod.uid, ip, netns: ns.path, cookie: String(cookie), failOpen: pod.failOpen }, have ? 'pod enrolment changed' : 'pod enrolled');
    }
    for (const [p, pod] of this.enrolled) {
      if (seen.has(p)) continue;
      this.datapath.unenroll(pod.cookie);
      this.enrolled.delete(p);
      log.info({ pod: pod.uid, netns: p }, 'pod unenrolled');
    }
    // cookies left in a pinned map by an earlier agent that nobody wants now
    const live = new Set([...this.enrolled.values()].map((p) => p.cookie));
    for (const cookie of this.datapath.enrolled()) {
      if (!live.has(cookie)) this.datapath.unenroll(cookie);
    }
    enrolledPods.set(this.enrolled.size);
    this.reconciledOnce = true;
  }
}

async function inodeOf(p: string): Promise<number | undefined> {
  try {
    return (await stat(p)).ino;
  } catch {
    return undefined;
  }
}
