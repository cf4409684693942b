// The proxy's listening sockets as descriptors the agent owns: bound before anything else
// is loaded (so a restarting agent queues connections in the kernel instead of refusing
// them while it starts), or taken over from the agent before it (handoff.ts), and handed to
// the servers with `listen({fd})`. The admin port is not among them: the admin server binds
// its own, once the agent before it let go of it.
import { closeDescriptor } from '../datapath/socket-handoff.js';
import { tcpListener } from '../datapath/socket-calls.js';

export type ListenerName = 'outbound' | 'inbound' | 'hbone';

export interface ListenerAddress {
  name: ListenerName;
  host: string;
  port: number;
}

export interface HeldListener extends ListenerAddress {
  fd: number;
}

export const sameAddress = (a: ListenerAddress, b: ListenerAddress) => a.name === b.name && a.host === b.host && a.port === b.port;

/** A listening socket for `a`; the inbound capture's is IP_TRANSPARENT (bpf_sk_assign needs it). */
export function bindListener(a: ListenerAddress): HeldListener {
  return { ...a, fd: tcpListener(a.host, a.port, { transparent: a.name === 'inbound' }) };
}

/**
 * The listeners an agent serves on, from wherever they came. A descriptor belongs to this
 * object until a server takes it (`take`), then to the server, which closes it; `list`
 * still names it while the server listens, for the handoff to a successor.
 */
export class AgentListeners {
  private readonly held = new Map<ListenerName, HeldListener & { taken: boolean }>();

  constructor(
    listeners: HeldListener[],
    /** where they came from, for the logs */
    readonly origin: 'bound' | 'handoff',
  ) {
    for (const l of listeners) this.held.set(l.name, { ...l, taken: false });
  }

  /** The descriptor for `a`, now the caller's to listen on: held already, or bound now. */
  take(a: ListenerAddress): number {
    const have = this.held.get(a.name);
    if (have && !have.taken && sameAddress(have, a)) {
      have.taken = true;
      return have.fd;
    }
    if (have && !have.taken) closeDescriptor(have.fd); // the address changed with this agent's flags
    const l = { ...bindListener(a), taken: true };
    this.held.set(a.name, l);
    return l.fd;
  }

  /** The listeners in use, for a successor (valid while their servers listen). */
  list(): HeldListener[] {
    return [...this.held.values()].filter((l) => l.taken).map(({ taken: _, ...l }) => l);
  }

  /** Closes what no server took (a failed start, a listener this agent does not run). */
  closeUntaken(): void {
    for (const [name, l] of this.held) {
      if (l.taken) continue;
      closeDescriptor(l.fd);
      this.held.delete(name);
    }
  }
}
