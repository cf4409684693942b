// Keeps the datapath's set of enrolled network namespaces equal to the meshed pods of this
// node in the current snapshot, each with its fail mode. Opt-in and fail mode are resolved
// by the control plane (Workload.meshed, Workload.failOpen); here a workload is matched to
// its netns by pod IP.
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

  /** Serialized: a reconcile never runs concurrently with another. */
  reconcile(snapshot: Snapshot): Promise<void> {
    this.running = this.running
      .then(() => this.reconcileNow(snapshot))
      .catch((err: unknown) => {
        log.error({ err }, 'enrollment reconcile failed; will retry');
      });
    return this.running;
  }

  private async reconcileNow(snapshot: Snapshot): Promise<void> {
    const wanted = new Map<string, { uid: string; failOpen: boolean }>(); // by ip
    for (const w of snapshot.workloads) if (w.node === this.node && w.meshed && w.ip) wanted.set(w.ip, { uid: w.uid, failOpen: w.failOpen });

    const seen = new Set<string>();
    for (const ns of await this.scanner.scan()) {
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
