// One "agent" of the control-plane scenario (runs in a lab node's netns): the agent's own
// discovery client (control/api/discovery-client.ts watchSnapshots, over the agent's TLS
// with the node's credential) and what the agent does first with each snapshot: build its
// ProxyState. Each applied snapshot is one JSON line:
//   {"node", "version", "appliedAt" (epoch ms), "applyMs", "workloads", "services"}
// It stands in for a full agent (no datapath, no proxy): what it measures is the control
// plane's push and the agent's decode, check and state build.
//   node discovery-watcher.js CONTROL_HOST:PORT NODE CREDENTIAL_DIR ROOT_CERT
import { ControlPlaneCredentials } from '../../../control/api/control-credentials.js';
import { watchSnapshots } from '../../../control/api/discovery-client.js';
import { ProxyState } from '../../../agent/state/proxy-state.js';

const [address, node, credentialDir, rootCert] = process.argv.slice(2);
const creds = new ControlPlaneCredentials({ rootCertFile: rootCert!, nodeCredentialDir: credentialDir! });
let state: ProxyState | undefined;
const watch = watchSnapshots({
  address: address!,
  node: node!,
  credentials: creds.credentials,
  initialBackoffMs: 100,
  maxBackoffMs: 1_000,
  onSnapshot: (s) => {
    const t0 = performance.now();
    state = new ProxyState(s);
    const applyMs = performance.now() - t0;
    process.stdout.write(
      JSON.stringify({
        node,
        version: s.version,
        appliedAt: Date.now(),
        applyMs,
        workloads: s.workloads.length,
        services: s.services.length,
      }) + '\n',
    );
  },
  onError: (err) => process.stderr.write(`${node}: ${err.message}\n`),
});
const stop = () => {
  watch.close();
  creds.close();
  void state;
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.resume();
process.stdin.on('end', stop);
