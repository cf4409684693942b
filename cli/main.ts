// `nodemesh` — one CLI for every role: the control plane, the node agent, the lab, and the
// operator's views (status, check, config status, tap), plus the demo.
import { parseArgs } from 'node:util';
import { NodemeshError } from '../common/errors.js';
import { logger } from '../common/log.js';
import { AGENT_PORTS, CONTROL_PORTS } from '../common/ports.js';

const USAGE = `usage: nodemesh <command> [flags]

  control  --config-dir DIR [--grpc HOST:PORT] [--admin HOST:PORT] [--trust-domain TD]
           --ca-dir DIR --node-ca FILE [--ca-cert FILE --ca-key FILE [--ca-chain FILE]]
           [--cert-ttl 24h] [--root-overlap DURATION] [--server-name NAME…] | --insecure
           run the control plane (gRPC+TLS and the CA ${CONTROL_PORTS.grpc}, admin ${CONTROL_PORTS.admin}) over a directory of YAML
  agent    --node NAME --control HOST:PORT --proxy-ip IP [--admin HOST:PORT]
           [--pods-cgroup DIR] [--pin-dir DIR] [--netns-dir DIR] [--state-dir DIR]
           [--drain-period 20s] [--liveness-timeout 2s] [--workers N]
           --root-cert FILE --node-credential DIR | --insecure-control
           run the node agent (outbound ${AGENT_PORTS.outbound}, admin ${AGENT_PORTS.admin}); env NODE_NAME, NODE_IP,
           NODEMESH_CONTROL stand in for the flags (DaemonSet). A second agent started beside it
           takes its sockets over; on SIGTERM it drains; the datapath stays (fail closed);
           --workers (NODEMESH_WORKERS): proxy processes, default the cores its cgroup allows
  agent cleanup [--pin-dir DIR] [--state-dir DIR]   uninstall: remove what agents left (tc, rules, links, pins, state)
  lab up -f DIR [--name LAB] [--no-agents]   start a local cluster of netns nodes and pods
  lab exec NS/POD|node/NODE [--name LAB] -- CMD…   run a command inside a pod or node
  lab down [--name LAB]                       remove everything the lab made
  lab status [--name LAB]
  status   [--name LAB]        agents' readiness and snapshot versions, config summary
  check                        preflight: can the agent run on this machine?
  config status [--control HOST:PORT | --name LAB]   every resource: Accepted / Rejected
  tap [--agent HOST:PORT | --name LAB [--node NODE]] stream the connections a node proxy handles
  demo [--once]                the sample application in the lab, traffic and metrics
  ca rotate (--ca-dir DIR | --name LAB) [--overlap DURATION]   new root; the old one trusted for the overlap
  ca status (--ca-dir DIR | --name LAB)                        roots trusted now, rotation in progress
  ca node-ca --out DIR | ca node-credential --node-ca DIR --node NODE --out DIR
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'control':
      return (await import('./run-control.js')).runControl(rest);
    case 'agent':
      return (await import('./run-agent.js')).runAgent(rest);
    case 'lab':
      return (await import('./lab-commands.js')).runLab(rest);
    case 'status':
      return (await import('./status.js')).runStatus(rest);
    case 'check':
      return (await import('./check.js')).printChecks(process.stdout);
    case 'config': {
      if (rest[0] !== 'status') break;
      const { values } = parseArgs({ args: rest.slice(1), options: { control: { type: 'string' }, name: { type: 'string' } } });
      const { controlAdminAddress } = await import('./status.js');
      const { printConfigStatus } = await import('./config-status.js');
      return printConfigStatus(values.control ?? (await controlAdminAddress(values.name)), process.stdout);
    }
    case 'tap':
      return (await import('./tap.js')).runTap(rest);
    case 'demo':
      return (await import('./demo.js')).runDemo(rest);
    case 'ca':
      return (await import('./ca.js')).runCa(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
  }
  process.stderr.write(`nodemesh: unknown command "${argv.join(' ')}"\n\n${USAGE}`);
  return 2;
}

try {
  const code = await main(process.argv.slice(2));
  // long-running roles (control, agent) resolve only when they stop
  process.exitCode = code;
} catch (err) {
  if (err instanceof NodemeshError || (err instanceof Error && (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')) {
    process.stderr.write(`nodemesh: ${err.message}\n`);
  } else {
    logger('cli').error({ err }, 'failed');
    process.stderr.write(`nodemesh: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exitCode = 1;
}
