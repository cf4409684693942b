// The agent's first step, before the rest of it is even loaded (cli/run-agent.ts imports
// this, then the agent): the listening sockets, taken over from a running agent on this node
// (an upgrade: no connection refused) or bound at once (a first start, or a restart after a
// crash: connections wait in the kernel's queue while the agent loads, instead of being
// refused). Light on purpose: it pulls in no gRPC, TLS, HTTP or metrics.
import { AGENT_PORTS } from '../../common/ports.js';
import { takeOver, type Predecessor } from './handoff.js';
import { AgentListeners, bindListener, type HeldListener, type ListenerAddress } from './listeners.js';

/** Where an agent keeps what the next agent on its node needs: the handoff socket, the last good state. */
export const DEFAULT_STATE_DIR = '/run/nodemesh/agent';

export interface PreparedListeners {
  listeners: AgentListeners;
  /** the agent being taken over from, if any: it serves beside us until we confirm */
  predecessor: Predecessor | undefined;
}

export function listenerAddresses(o: { proxyIp: string; outboundPort?: number; hbone: boolean }): ListenerAddress[] {
  return [
    { name: 'outbound', host: o.proxyIp, port: o.outboundPort ?? AGENT_PORTS.outbound },
    { name: 'inbound', host: o.proxyIp, port: AGENT_PORTS.inbound },
    ...(o.hbone ? [{ name: 'hbone' as const, host: o.proxyIp, port: AGENT_PORTS.hbone }] : []),
  ];
}

export function prepareListeners(stateDir: string, wanted: readonly ListenerAddress[]): PreparedListeners {
  const t = takeOver(stateDir, wanted);
  if (t) return { listeners: new AgentListeners(t.listeners, 'handoff'), predecessor: t.predecessor };
  const held: HeldListener[] = [];
  try {
    for (const a of wanted) held.push(bindListener(a));
  } catch (err) {
    new AgentListeners(held, 'bound').closeUntaken();
    throw err;
  }
  return { listeners: new AgentListeners(held, 'bound'), predecessor: undefined };
}
