// What a Service port declares about its protocol, Istio's rule: its `appProtocol`, else the
// prefix of its name ("<protocol>[-<suffix>]"). The agent's proxies act on it
// (agent/transport/protocol-detect.ts) and the analyzer checks it (control/analyze).
import type { ServicePort } from './snapshot.js';

export type Declared = 'http' | 'http2' | 'tcp' | 'unknown';

const APP_PROTOCOLS: Record<string, Declared> = {
  http: 'http',
  'kubernetes.io/ws': 'http',
  http2: 'http2',
  grpc: 'http2',
  'grpc-web': 'http',
  'kubernetes.io/h2c': 'http2',
  tcp: 'tcp',
  tls: 'tcp',
  https: 'tcp',
  'kubernetes.io/wss': 'tcp',
  mongo: 'tcp',
  redis: 'tcp',
  mysql: 'tcp',
};

/** What the Service port says about its protocol. */
export function declaredProtocol(port: Pick<ServicePort, 'name' | 'appProtocol'>): Declared {
  const app = (port.appProtocol ?? '').toLowerCase();
  if (app) return APP_PROTOCOLS[app] ?? 'unknown';
  // "Istio ... the port name in the form <protocol>[-<suffix>]"
  const name = (port.name ?? '').toLowerCase();
  const prefix = name.split('-', 1)[0]!;
  return APP_PROTOCOLS[prefix] ?? 'unknown';
}
