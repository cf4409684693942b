// Keeps the datapath's set of enrolled network namespaces equal to the meshed pods of this
// node in the current snapshot, each with its fail mode. Opt-in and fail mode are resolved
// by the control plane (Workload.meshed, Workload.failOpen); every snapshot reconciles.
//
// Two ways from a workload to its netns:
// - the sandboxes the chained CNI plugin (cni/, served by cni-server.ts) told us about: ADD
//   names the pod and its netns path, meshed or not, so a later snapshot that changes the
//   pod's opt-in (its `nodemesh.io/mesh` annotation, its namespace's label) enrolls or
//   releases that netns by path, at once, with no scan. ADD of a meshed pod enrolls before
//   the pod's first instruction runs; the entry stays until DEL, until its netns is gone, or
//   until the snapshot says the pod is not meshed (a pod the snapshot does not know yet keeps
//   what ADD decided);
// - the scan of the netns directory, matching by pod IP: pods that existed before this agent
//   started (or before the plugin was installed), found on the first reconcile; later only a
//   slow safety net (agent.ts). The scan skips the netns the plugin named or is naming
//   (reading one's addresses costs a process), so a burst of new pods does not hold ADDs
//   behind it.
//
// ADD, DEL and reconciles run one at a time. Reconciles coalesce: while one is queued and
// not started, later calls join it and it runs with the newest snapshot, so a burst of
// snapshots (or the rescan) queues at most one in front of an ADD.
import { stat } from 'node:fs/promises';
import { JoinableRun } from '../../common/joinable-run.js';
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

/** A pod sandbox the CNI plugin's ADD named, meshed or not. */
interface Sandbox {
  containerId: string;
  inode: number;
  /** namespace/name */
  uid: string;
}

export class Enrollment {
  /** by netns path */
  private readonly enrolled = new Map<string, EnrolledPod>();
  /** by netns path: every ADD since this agent started, until DEL or the netns is gone */
  private readonly sandboxes = new Map<string, Sandbox>();
  private running: Promise<void> = Promise.resolve();
  private reconciledOnce = false;
  /** the last reconcile failed (logged): the next snapshot must not take its pods as done */
  private reconcileFailed = false;
  /** reconciles in the queue ADD and DEL use, joined by the calls made before one starts */
  private readonly reconciles = new JoinableRun<Snapshot>(
    (start) =>
      this.serialized(start).catch((err: unknown) => {
        this.reconcileFailed = true;
        log.error({ err }, 'enrollment reconcile failed; will retry');
      }),
    (snapshot) => this.reconcileNow(snapshot),
  );
  /** inodes of the netns whose ADD is waiting its turn: the scan leaves them to it */
  private readonly adding = new Map<number, number>();
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

  /** Whether the last reconcile failed (it was logged; the next one retries). */
  get lastReconcileFailed(): boolean {
    return this.reconcileFailed;
  }

  list(): EnrolledPod[] {
    return [...this.enrolled.values()];
  }

  /**
   * Serialized: a reconcile never runs concurrently with another, nor with a CNI call.
   * Resolves once a reconcile that started after this call (with this snapshot or a newer
   * one) is done.
   */
  reconcile(snapshot: Snapshot): Promise<void> {
    return this.reconciles.request(snapshot);
  }

  /** The CNI plugin's ADD: enrolls the netns at `netns` now; rejects when it cannot. */
  enrollSandbox(netns: string, containerId: string, pod: { uid: string; ip: string; failOpen: boolean }): Promise<EnrolledPod> {
    // known before its turn: a scan meanwhile leaves this netns to the ADD
    const inode = stat(netns).then(({ ino }) => {
      this.adding.set(ino, (this.adding.get(ino) ?? 0) + 1);
      return ino;
    });
    inode.catch(() => undefined); // the ADD's own turn reports it
    return this.serialized(async () => {
      const ino = await inode;
      try {
        return await this.enrollNow(netns, ino, containerId, pod);
      } finally {
        const n = this.adding.get(ino)! - 1;
        if (n > 0) this.adding.set(ino, n);
        else this.adding.delete(ino);
      }
    });
  }

  private async enrollNow(netns: string, ino: number, containerId: string, pod: { uid: string; ip: string; failOpen: boolean }): Promise<EnrolledPod> {
    for (const [p, have] of this.enrolled) {
      // a scan found it first under another path (/run/netns vs /var/run/netns)
      if (p !== netns && have.cni === undefined && (await inodeOf(p)) === ino) this.enrolled.delete(p);
    }
    const cookie = this.datapath.enroll(netns, { failOpen: pod.failOpen });
    this.sandboxes.set(netns, { containerId, inode: ino, uid: pod.uid });
    const entry: EnrolledPod = { ...pod, netns, cookie, cni: { containerId, inode: ino } };
    this.enrolled.set(netns, entry);
    enrolledPods.set(this.enrolled.size);
    log.info({ pod: pod.uid, netns, containerId, cookie: String(cookie), failOpen: pod.failOpen }, 'pod enrolled by the CNI plugin');
    return entry;
  }

  /**
   * The CNI plugin's ADD of a pod that is not meshed: nothing enrolled, but its netns is
   * remembered, so a snapshot that opts it in later enrolls it by path.
   */
  recordSandbox(netns: string, containerId: string, uid: string): Promise<void> {
    return this.serialized(async () => {
      // an unmeshed pod is passed through whatever its netns: one we cannot stat is left to the scan
      const ino = await inodeOf(netns);
      if (ino === undefined) return log.warn({ pod: uid, netns, containerId }, 'the netns of an unmeshed pod cannot be read; opting it in later relies on the scan');
      this.sandboxes.set(netns, { containerId, inode: ino, uid });
    });
  }

  /** The CNI plugin's DEL: forgets the sandbox and releases its netns; false if it was not enrolled. */
  releaseSandbox(containerId: string): Promise<boolean> {
    return this.serialized(async () => {
      let released = false;
      for (const [p, sb] of this.sandboxes) if (sb.containerId === containerId) this.sandboxes.delete(p);
      for (const [p, pod] of this.enrolled) {
        if (pod.cni?.containerId !== containerId) continue;
        this.datapath.unenroll(pod.cookie);
        this.enrolled.delete(p);
        enrolledPods.set(this.enrolled.size);
        log.info({ pod: pod.uid, netns: p, containerId }, 'pod released by the CNI plugin');
        released = true;
      }
      return released;
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
    // the sandboxes the CNI plugin named: the snapshot decides, by pod, what their netns get
    const byUid = new Map(snapshot.workloads.map((w) => [w.uid, w]));
    const cniInodes = new Set<number>();
    // every sandbox's netns still there (in parallel: one stat each, hundreds on a full node)
    const inodes = new Map(await Promise.all([...this.sandboxes.keys()].map(async (p) => [p, await inodeOf(p)] as const)));
    for (const [p, sb] of this.sandboxes) {
      if (inodes.get(p) !== sb.inode) {
        this.sandboxes.delete(p); // gone without a DEL: released below if it was enrolled
        continue;
      }
      cniInodes.add(sb.inode);
      const have = this.enrolled.get(p);
      const w = byUid.get(sb.uid);
      if (!w) {
        if (have) seen.add(p); // not in the snapshot yet: what ADD decided stands
        continue;
      }
      if (!w.meshed) continue; // released below if it was enrolled
      seen.add(p);
      if (have && have.failOpen === w.failOpen && have.ip === w.ip) continue;
      const cookie = this.datapath.enroll(p, { failOpen: w.failOpen });
      this.enrolled.set(p, { uid: w.uid, ip: w.ip, netns: p, cookie, failOpen: w.failOpen, cni: { containerId: sb.containerId, inode: sb.inode } });
      log.info({ pod: w.uid, ip: w.ip, netns: p, cookie: String(cookie), failOpen: w.failOpen }, have ? 'pod enrolment changed' : 'pod enrolled: the snapshot opted it in');
    }
    for (const ns of await this.scanner.scan((inode) => cniInodes.has(inode) || this.adding.has(inode))) {
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
      log.info({ pod: pod.uid, netns: p }, 'pod released: not meshed in the snapshot, or its netns is gone');
    }
    // cookies left in a pinned map by an earlier agent that nobody wants now
    const live = new Set([...this.enrolled.values()].map((p) => p.cookie));
    for (const cookie of this.datapath.enrolled()) {
      if (!live.has(cookie)) this.datapath.unenroll(cookie);
    }
    enrolledPods.set(this.enrolled.size);
    this.reconciledOnce = true;
    this.reconcileFailed = false;
  }
}

async function inodeOf(p: string): Promise<number | undefined> {
  try {
    return (await stat(p)).ino;
  } catch {
    return undefined;
  }
}
