// Where an agent finds the control plane, and how its gRPC channels to it notice that it is
// gone: the agent's `--control`, turned into a grpc-js target and channel options shared by
// the discovery stream and the CA client.
//
// `--control` is one `host:port` (a DNS name with several addresses is several replicas:
// grpc-js resolves every A/AAAA record), or a comma-separated list of IP `host:port`s
// (`10.0.0.5:15012,10.0.0.6:15012`). Every channel picks among the replicas with
// pick_first over a shuffled address list, so the nodes of a cluster spread over the
// replicas instead of all taking the first, and a replica that fails is replaced by the
// next one (grpc-js tries the next address 250 ms into a connection attempt that has not
// succeeded). Every replica's serving certificate carries the control plane's Service name
// (CONTROL_SERVER_NAME): a list of addresses is verified against that name, not against
// whichever address was first.
//
// Keepalive (gRPC A8): an HTTP/2 PING every KEEPALIVE_MS on a connection with a call open,
// and a connection whose PING is not answered within KEEPALIVE_TIMEOUT_MS is closed. A TCP
// connection to a frozen (SIGSTOP) or partitioned control plane looks healthy to the kernel
// for minutes; the PING notices within KEEPALIVE_MS + KEEPALIVE_TIMEOUT_MS (8 s), where
// grpc-js's and Istio's 30 s + 10 s (seen: 35.6 s) did not. The control plane permits it
// (grpc-js servers enforce no minimum PING interval); a PING every 4 s from each node is
// nothing next to the snapshots.
import type * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { NodemeshError } from '../../common/errors.js';
import { parseHostPort } from '../../common/host-port.js';

/** The name every control-plane replica's serving certificate carries (its Service's). */
export const CONTROL_SERVER_NAME = 'nodemesh-control.nodemesh-system.svc';

export const KEEPALIVE_MS = 4_000;
export const KEEPALIVE_TIMEOUT_MS = 4_000;

export interface ControlTarget {
  /** the grpc-js target: `host:port`, or `ipv4:a:p,b:p` / `ipv6:[a]:p,[b]:p` */
  target: string;
  /** the replicas as given, for messages */
  addresses: string[];
  channelOptions: grpc.ChannelOptions;
}

export interface ControlTargetOptions {
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
  /** first and largest delay of grpc-js's own reconnection backoff (kept within the watch's) */
  reconnectBackoffMs?: { initial: number; max: number };
}

/** `--control` → the grpc-js target and channel options; throws NM_ERR_CONTROL naming a malformed entry. */
export function controlTarget(control: string, opts: ControlTargetOptions = {}): ControlTarget {
  const addresses = control
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (addresses.length === 0) throw new NodemeshError('NM_ERR_CONTROL', `--control ${JSON.stringify(control)}: expected host:port, or several IP host:port separated by commas`);
  const channelOptions: grpc.ChannelOptions = {
    'grpc.keepalive_time_ms': opts.keepaliveMs ?? KEEPALIVE_MS,
    'grpc.keepalive_timeout_ms': opts.keepaliveTimeoutMs ?? KEEPALIVE_TIMEOUT_MS,
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ pick_first: { shuffleAddressList: true } }] }),
  };
  if (opts.reconnectBackoffMs) {
    channelOptions['grpc.initial_reconnect_backoff_ms'] = opts.reconnectBackoffMs.initial;
    channelOptions['grpc.max_reconnect_backoff_ms'] = opts.reconnectBackoffMs.max;
  }
  if (addresses.length === 1) return { target: addresses[0]!, addresses, channelOptions };
  const parsed = addresses.map((a) => {
    const hp = parseHostPort(a);
    if (!hp || hp.port === 0 || isIP(hp.host) === 0) {
      throw new NodemeshError(
        'NM_ERR_CONTROL',
        `--control: ${JSON.stringify(a)} in a list of replicas must be an IP address with a port (a name with several replicas is given alone: its DNS records list them)`,
      );
    }
    return hp;
  });
  const family = isIP(parsed[0]!.host);
  if (parsed.some((p) => isIP(p.host) !== family)) throw new NodemeshError('NM_ERR_CONTROL', `--control ${control}: the replicas of a list must all be IPv4 or all IPv6`);
  const target = `${family === 4 ? 'ipv4' : 'ipv6'}:${parsed.map((p) => (family === 6 ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`)).join(',')}`;
  channelOptions['grpc.ssl_target_name_override'] = CONTROL_SERVER_NAME;
  channelOptions['grpc.default_authority'] = CONTROL_SERVER_NAME;
  return { target, addresses, channelOptions };
}
