// `nodemesh control`: the control plane in the foreground until SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { startControlPlane } from '../control/control-plane.js';
import { logger } from '../control/api/log.js';

export async function runControl(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'config-dir': { type: 'string' },
      grpc: { type: 'string', default: '0.0.0.0:15012' },
      admin: { type: 'string', default: '0.0.0.0:15014' },
      'trust-domain': { type: 'string', default: 'cluster.local' },
    },
  });
  const configDir = values['config-dir'] ?? process.env.NODEMESH_CONFIG_DIR;
  if (!configDir) throw new Error('control: --config-dir DIR is required (a directory of Kubernetes-shaped YAML)');
  const cp = await startControlPlane({
    configDir,
    grpcAddress: values.grpc!,
    adminAddress: values.admin!,
    trustDomain: values['trust-domain']!,
  });
  logger('control').info({ grpc: values.grpc, admin: values.admin, configDir }, 'control plane started');
  await untilSignal();
  await cp.close();
  return 0;
}

export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}
