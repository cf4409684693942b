// `nodemesh control`: the control plane in the foreground until SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { startControlPlane, type ControlPlaneOptions } from '../control/control-plane.js';
import { parseDurationSeconds } from './ca.js';
import { logger } from '../common/log.js';
import { CONTROL_PORTS } from '../common/ports.js';
import { untilSignal } from './signals.js';

export async function runControl(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'config-dir': { type: 'string' },
      grpc: { type: 'string', default: `0.0.0.0:${CONTROL_PORTS.grpc}` },
      admin: { type: 'string', default: `0.0.0.0:${CONTROL_PORTS.admin}` },
      'trust-domain': { type: 'string', default: 'cluster.local' },
      'ca-dir': { type: 'string' },
      'node-ca': { type: 'string' },
      'ca-cert': { type: 'string' },
      'ca-key': { type: 'string' },
      'ca-chain': { type: 'string' },
      'cert-ttl': { type: 'string' },
      'root-overlap': { type: 'string' },
      'server-name': { type: 'string', multiple: true },
      insecure: { type: 'boolean' },
    },
  });
  const configDir = values['config-dir'] ?? process.env.NODEMESH_CONFIG_DIR;
  if (!configDir) throw new Error('control: --config-dir DIR is required (a directory of Kubernetes-shaped YAML)');
  const opts: ControlPlaneOptions = { configDir, grpcAddress: values.grpc!, adminAddress: values.admin!, trustDomain: values['trust-domain']! };
  if (!values.insecure) {
    const caDir = values['ca-dir'] ?? process.env.NODEMESH_CA_DIR;
    const nodeCa = values['node-ca'] ?? process.env.NODEMESH_NODE_CA;
    const missing = [!caDir && '--ca-dir DIR (the CA state: its root is generated there on first start)', !nodeCa && '--node-ca FILE (the CA of the node credentials agents present)'].filter(Boolean);
    if (missing.length) throw new Error(`control: missing ${missing.join(', ')} (--insecure: plaintext gRPC, no CA; development only)`);
    if (Boolean(values['ca-cert']) !== Boolean(values['ca-key'])) throw new Error('control: --ca-cert and --ca-key go together (an operator-supplied signing certificate and its key)');
    opts.ca = { dir: caDir!, nodeCaFile: nodeCa! };
    if (values['ca-cert']) opts.ca.operator = { certFile: values['ca-cert'], keyFile: values['ca-key']!, ...(values['ca-chain'] ? { chainFile: values['ca-chain'] } : {}) };
    // env fallbacks, as for the dirs: the lab passes them to its control plane this way
    const certTtl = values['cert-ttl'] ?? process.env.NODEMESH_CERT_TTL;
    const rootOverlap = values['root-overlap'] ?? process.env.NODEMESH_ROOT_OVERLAP;
    if (certTtl) opts.ca.workloadTtlMs = parseDurationSeconds(certTtl) * 1000;
    if (rootOverlap) opts.ca.overlapMs = parseDurationSeconds(rootOverlap) * 1000;
    if (values['server-name']) opts.ca.serverNames = values['server-name'];
  }
  const cp = await startControlPlane(opts);
  logger('control').info({ grpc: values.grpc, admin: values.admin, configDir }, 'control plane started');
  await untilSignal();
  await cp.close();
  return 0;
}
