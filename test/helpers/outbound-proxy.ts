// The outbound proxy (agent/proxy/outbound.ts) whole, on loopback and without the kernel:
// every accepted connection is taken as redirected to the Service's ClusterIP:port (the
// datapath's original destination is given, not read), the connector dials the backends
// on 127.0.0.1. Tests of what the proxy does with the connections it accepts use it: how
// they end, their timeouts, the bounds per source.
import type { ExecutionContext } from 'ava';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { OutboundProxy, type OutboundProxyOptions } from '../../agent/proxy/outbound.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import type { UpstreamConnector } from '../../agent/transport/connector.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { LoopbackConnector, VIP } from './l7-harness.js';

export interface LoopbackProxy {
  proxy: OutboundProxy;
  port: number;
  /** the original destination every new connection gets (the Service by default) */
  dst: { ip: string; port: number };
  /** a TCP connection to the proxy from `localAddress` (127.0.0.1 by default), connected */
  connect(localAddress?: string): Promise<net.Socket>;
}

/** An outbound proxy on 127.0.0.1 serving `snap`, closed (forcefully) with the test. */
export async function loopbackProxy(
  t: ExecutionContext,
  snap: Snapshot,
  opts: Partial<OutboundProxyOptions> & { connector?: UpstreamConnector } = {},
): Promise<LoopbackProxy> {
  const state = new ProxyState(snap);
  const lp = { dst: { ip: VIP, port: 80 } } as LoopbackProxy;
  const proxy = new OutboundProxy({
    host: '127.0.0.1',
    port: 0,
    state: () => state,
    connector: opts.connector ?? new LoopbackConnector(),
    originalDst: () => lp.dst,
    ...opts,
  });
  await proxy.listen();
  // bounded: a proxy that cannot close what it holds must not hang the run (the test's own
  // assertions tell what it held)
  t.teardown(() => Promise.race([proxy.close(true), new Promise((r) => setTimeout(r, 3000).unref())]));
  lp.proxy = proxy;
  lp.port = proxy.address.port;
  lp.connect = (localAddress = '127.0.0.1') =>
    new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: lp.port, localAddress });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
      t.teardown(() => void s.destroy());
    });
  return lp;
}

/** This process's open file descriptors (the proxy runs in it). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Resolves once `s` is closed, with whether the peer closed it (sent FIN or RST) and what it sent. */
export function closedByPeer(s: net.Socket): Promise<{ data: string; ended: boolean; reset: boolean }> {
  return new Promise((resolve) => {
    let data = '';
    let ended = false;
    let reset = false;
    s.on('data', (d: Buffer) => (data += d.toString('latin1')));
    s.on('end', () => {
      ended = true;
      s.destroy();
    });
    s.on('error', (err: NodeJS.ErrnoException) => (reset = err.code === 'ECONNRESET' || err.code === 'EPIPE'));
    s.once('close', () => resolve({ data, ended, reset }));
  });
}

/** `p`'s value, or undefined when it has not settled within `ms` (so that a hang fails a test instead of stalling it). */
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([p, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
}
