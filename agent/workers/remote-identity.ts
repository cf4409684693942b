// A worker's workload identities: the certificates the agent's identity manager holds,
// pushed by the primary whenever one is obtained or renewed and whenever the trust bundle
// changes; one the worker lacks (a pod new on the node) is asked of the primary, which
// fetches it from the CA as it would for itself. Keys reach workers over the IPC channel,
// which only the agent's own processes share.
import type { IdentityProvider, WorkloadCertificate } from '../identity/identity.js';
import type { IdentityUpdate } from './protocol.js';

/** How long a worker waits for the primary's answer (the primary's own CA call has its timeouts). */
const ASK_TIMEOUT_MS = 30_000;

export class RemoteIdentity implements IdentityProvider {
  private certificates = new Map<string, WorkloadCertificate>();
  private bundle: string[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (c: WorkloadCertificate) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly ask: (id: number, spiffeId: string) => void) {}

  update(u: IdentityUpdate): void {
    this.certificates = new Map(u.certificates.map((c) => [c.spiffeId, c]));
    this.bundle = u.trustBundle;
  }

  certificate(spiffeId: string): Promise<WorkloadCertificate> {
    const c = this.certificates.get(spiffeId);
    if (c && c.notAfter.getTime() > Date.now()) return Promise.resolve(c);
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no certificate for ${spiffeId} from the agent within ${ASK_TIMEOUT_MS} ms`));
      }, ASK_TIMEOUT_MS);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
      this.ask(id, spiffeId);
    });
  }

  /** The primary's answer to certificate(). */
  answered(id: number, certificate: WorkloadCertificate | undefined, error: string | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (certificate) {
      this.certificates.set(certificate.spiffeId, certificate);
      p.resolve(certificate);
    } else p.reject(new Error(error ?? 'no certificate'));
  }

  trustBundle(): string[] {
    return this.bundle;
  }

  /** Fails what still waits (the worker closes). */
  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error('worker closing'));
    }
    this.pending.clear();
  }
}
