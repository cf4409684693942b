// The agent's last good state on the node — the snapshot it serves and its workload
// certificates — kept in <state dir>/last-good.json so that the next agent on this node
// (restarted after a crash, or taking over in an upgrade) serves from its first second,
// before it has talked to the control plane, instead of after a snapshot round trip and a
// certificate request per identity (~1–3 s measured in the lab).
//
// Why it is safe to serve from it:
//   - it is exactly what the previous agent was serving, and an agent keeps serving its
//     last good snapshot through a control-plane outage anyway; the live snapshot replaces
//     it the moment it arrives;
//   - it is checked as a snapshot from the wire is (snapshot-check.ts), and every certificate
//     again (SPIFFE ID, our key, chain to the trust bundle, not expired) before use;
//   - it is dropped when older than MAX_AGE_MS: longer than kubelet's crash-loop back-off
//     (5 min) so every restart finds it, short enough that pod IPs freed since are unlikely
//     to have been handed to other pods;
//   - the workload keys are written 0600 in a 0700 directory on the node's tmpfs (/run):
//     whoever can read them is root on the node, who holds the node credential that the CA
//     issues those very certificates to. The node stays the trust boundary.
import fs from 'node:fs';
import path from 'node:path';
import { logger } from '../../common/log.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { checkSnapshot } from '../../control/api/snapshot-check.js';
import type { HeldCertificate } from '../identity/identity-manager.js';

const log = logger('agent/last-good');

export const LAST_GOOD_FILE = 'last-good.json';
/** Older than this, the state is not used (see above). */
export const MAX_AGE_MS = 10 * 60_000;
const FORMAT = 1;

export interface LastGood {
  snapshot: Snapshot | undefined;
  identities: HeldCertificate[];
  /** when it was written (ms since the epoch) */
  writtenAt: number;
}

/** Reads what the agent before this one left for `node`; undefined when there is nothing usable (said why). */
export function readLastGood(stateDir: string, node: string, now = Date.now()): LastGood | undefined {
  const file = path.join(stateDir, LAST_GOOD_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err, file }, 'cannot read the last good state; starting without it');
    return undefined;
  }
  try {
    const raw = JSON.parse(text) as { format?: unknown; node?: unknown; writtenAt?: unknown; snapshot?: unknown; identities?: unknown };
    if (raw.format !== FORMAT || raw.node !== node || typeof raw.writtenAt !== 'number') {
      log.info({ file, format: raw.format, node: raw.node }, 'the last good state is not this agent\'s (another format or node); starting without it');
      return undefined;
    }
    if (now - raw.writtenAt > MAX_AGE_MS || raw.writtenAt > now + 60_000) {
      log.info({ file, writtenAt: new Date(raw.writtenAt).toISOString() }, `the last good state is older than ${MAX_AGE_MS / 60_000} min; starting without it`);
      return undefined;
    }
    const snapshot = raw.snapshot === null || raw.snapshot === undefined ? undefined : checkSnapshot(raw.snapshot);
    const identities = Array.isArray(raw.identities) ? raw.identities.filter(isHeld) : [];
    return { snapshot, identities, writtenAt: raw.writtenAt };
  } catch (err) {
    log.warn({ err: (err as Error).message, file }, 'the last good state is damaged; starting without it');
    return undefined;
  }
}

function isHeld(v: unknown): v is HeldCertificate {
  const h = v as Partial<HeldCertificate> | null;
  return typeof h?.spiffeId === 'string' && typeof h.certChainPem === 'string' && typeof h.keyPem === 'string' && typeof h.renewAt === 'number';
}

/**
 * Keeps <state dir>/last-good.json up to date: `changed()` after every applied snapshot and
 * new certificate writes it at most every `debounceMs`; `flush()` writes now (before a
 * handoff). Written to a temporary file and renamed, so a reader never sees half of one.
 */
export class LastGoodWriter {
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private closed = false;

  constructor(
    private readonly stateDir: string,
    private readonly node: string,
    private readonly read: () => { snapshot: Snapshot | undefined; identities: HeldCertificate[] },
    private readonly debounceMs = 500,
  ) {}

  changed(): void {
    if (this.closed) return;
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.debounceMs);
    this.timer.unref();
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.dirty || this.closed) return;
    this.dirty = false;
    const { snapshot, identities } = this.read();
    if (!snapshot) return; // nothing worth serving from yet
    const file = path.join(this.stateDir, LAST_GOOD_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, JSON.stringify({ format: FORMAT, node: this.node, writtenAt: Date.now(), snapshot, identities }), { mode: 0o600 });
      fs.renameSync(tmp, file);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      log.warn({ err, file }, 'cannot write the last good state; a restart will wait for the control plane');
    }
  }

  /** Stops writing (after a handoff the successor owns the file). */
  close(): void {
    clearTimeout(this.timer);
    this.closed = true;
  }
}
