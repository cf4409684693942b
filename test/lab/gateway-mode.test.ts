// The east-west gateway's deployment mode in one lab (issue 13): `nodemesh agent --gateway`
// as its own process, with a node credential, on a LoadBalancer address (a second address of
// node-a's netns, on the lab's bridge, so the test's host reaches it as another network would)
// while its pod (a placeholder on node-a) gives it its identity. Shown with real parts:
// readiness says why it waits until its gateway Service has an address, then it is ready;
// `openssl s_client` sees the gateway ServiceAccount's SPIFFE ID; a real HBONE client with a
// mesh SVID from the lab's CA tunnels through it to node-b's node proxy and reaches the echo
// pod there with TLS end to end ("double HBONE"); a CONNECT to anything but a node proxy's
// 15008 is refused with 400, a peer without a mesh SVID at the handshake; its /metrics
// (promtool-clean) counts all of it; SIGTERM drains it and nothing of it is left.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { HboneConnector } from '../../agent/hbone/client.js';
import { parsePromText, sumMetric } from '../../cli/prom-text.js';
import { packagePath } from '../../common/paths.js';
import { createCertificateClient } from '../../control/api/ca-client.js';
import { ControlPlaneCredentials } from '../../control/api/control-credentials.js';
import type { Snapshot, Workload } from '../../control/api/snapshot.js';
import { labNodeCredentialDir, labTrustBundleFile } from '../../deploy/lab/lab-credentials.js';
import { csrWithKey } from '../helpers/csr.js';
import { eventually } from '../helpers/eventually.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged, run } from '../helpers/privileged.js';
import { ourFindings, promtoolFindings } from '../helpers/promtool.js';
import { FixedIdentityProvider } from '../helpers/test-ca.js';

const FIXTURE = packagePath('test', 'fixtures', 'gateway-mode');
const LAB = 'gw-mode';
const NETWORK = 'gw-net';
const GATEWAY_ID = 'spiffe://cluster.local/ns/nodemesh-system/sa/nodemesh-eastwestgateway';
const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/client';

if (canRunPrivileged('the east-west gateway mode in the lab')) {
  let vip = '';
  let dir = '';
  let gateway: ChildProcess | undefined;
  let gatewayLog = '';
  let exited: Promise<number | null> | undefined;
  const bundle = () => labTrustBundleFile(lab.state.stateDir);

  // once the lab is up: the gateway process, started as its Deployment's container would be
  const lab = labPerFile({ dir: FIXTURE, name: LAB, env: { NODEMESH_NETWORK: NETWORK } }, async () => {
    const a = lab.node('node-a');
    // the LoadBalancer address: a second address of node-a on the lab's bridge (the node
    // agent keeps node-a's own address for its 15008 and 15020)
    vip = lab.state.bridge!.ip.replace(/\.\d+$/, '.200');
    await run('ip', ['-n', a.netns, 'addr', 'add', `${vip}/24`, 'dev', 'eth0']);
    dir = await mkdtemp(path.join(tmpdir(), 'nodemesh-gw-mode-'));
    gatewayLog = path.join(dir, 'gateway.log');
    const out = openSync(gatewayLog, 'a');
    gateway = spawn(
      'nsenter',
      [
        `--net=/run/netns/${a.netns}`,
        '--',
        process.execPath,
        packagePath('bin', 'nodemesh.js'),
        'agent',
        '--gateway',
        '--node', 'node-a',
        '--proxy-ip', vip,
        '--control', lab.state.controlAddress!.grpc,
        '--root-cert', bundle(),
        '--node-credential', labNodeCredentialDir(lab.state.stateDir, 'node-a'),
        '--state-dir', path.join(dir, 'state'),
        '--admin-trusted-networks', `${lab.state.bridge!.ip}/32`,
        '--drain-period', '5s',
      ],
      { stdio: ['ignore', out, out] },
    );
    closeSync(out);
    exited = new Promise((resolve) => gateway!.once('exit', (code) => resolve(code)));
  });

  test.after.always(async () => {
    if (gateway && gateway.exitCode === null && gateway.signalCode === null) {
      gateway.kill('SIGKILL');
      await exited;
    }
    if (vip) await run('ip', ['-n', lab.node('node-a').netns, 'addr', 'del', `${vip}/24`, 'dev', 'eth0']);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const admin = (p: string) => fetch(`http://${vip}:15020${p}`, { signal: AbortSignal.timeout(10_000) });
  const logTail = async () => (await readFile(gatewayLog, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
  const refusedBy = async (reason: string) => sumMetric(parsePromText(await (await admin('/metrics')).text()), 'nodemesh_gateway_refused_total', { reason });

  /** A mesh SVID for the client pod of node-a, from the lab's CA with node-a's credential (as its agent gets one). */
  async function clientSvid() {
    const creds = new ControlPlaneCredentials({ rootCertFile: bundle(), nodeCredentialDir: labNodeCredentialDir(lab.state.stateDir, 'node-a') });
    const ca = createCertificateClient({ address: lab.state.controlAddress!.grpc, credentials: creds.credentials, timeoutMs: 30_000 });
    try {
      const { csrPem, keyPem } = csrWithKey([CLIENT_ID]);
      const chain = await ca.createCertificate({ csrPem, identity: CLIENT_ID, validitySeconds: 3600 });
      const leaf = new X509Certificate(chain[0]!);
      return { spiffeId: CLIENT_ID, certChainPem: chain.join(''), keyPem, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) };
    } finally {
      ca.close();
      creds.close();
    }
  }

  async function snapshot(): Promise<Snapshot> {
    return (await (await fetch(`http://${lab.state.controlAddress!.admin}/debug/snapshot`)).json()) as Snapshot;
  }

  test.serial('it waits for its gateway Service, saying so, and is ready once the Service has its LoadBalancer address', async (t) => {
    const why = await eventually(
      async () => {
        if (gateway!.exitCode !== null) throw new Error(`the gateway exited ${gateway!.exitCode}:\n${await logTail()}`);
        const res = await admin('/healthz/ready').catch(() => undefined);
        const body = await res?.text();
        return res?.status === 503 && body?.includes('east-west gateway') ? body : undefined;
      },
      60_000,
      'the gateway saying why it is not ready',
    );
    t.regex(why, /places no pod of an east-west gateway of network "gw-net" on node node-a/);
    t.is((await admin('/healthz/live')).status, 200);

    // the cloud's controller gives the LoadBalancer Service its address
    const file = path.join(lab.state.configDir, 'eastwestgateway-service.yaml');
    await writeFile(
      `${file}.tmp`,
      [
        'apiVersion: v1',
        'kind: Service',
        'metadata:',
        '  name: nodemesh-eastwestgateway',
        '  namespace: nodemesh-system',
        `  labels: {topology.istio.io/network: ${NETWORK}}`,
        'spec:',
        '  type: LoadBalancer',
        '  selector: {app: nodemesh-eastwestgateway}',
        '  ports: [{name: tls-hbone, port: 15008, targetPort: 15008}]',
        'status:',
        `  loadBalancer: {ingress: [{ip: ${vip}}]}`,
        '',
      ].join('\n'),
    );
    await rename(`${file}.tmp`, file);
    await eventually(async () => (await admin('/healthz/ready')).status === 200, 60_000, `the gateway ready (log:\n${await logTail()})`);
    const state = (await (await admin('/debug/state')).json()) as { identity: string; network: string; targets: string[] };
    t.is(state.identity, GATEWAY_ID);
    t.is(state.network, NETWORK);
    t.deepEqual(state.targets, [`${lab.node('node-a').ip}:15008`, `${lab.node('node-b').ip}:15008`].sort(), 'the node proxies of its network, from the snapshot');
  });

  test.serial('openssl s_client sees the gateway ServiceAccount’s SPIFFE ID, issued by the mesh CA', async (t) => {
    const svid = await clientSvid();
    await writeFile(path.join(dir, 'client.pem'), svid.certChainPem);
    await writeFile(path.join(dir, 'client-key.pem'), svid.keyPem, { mode: 0o600 });
    const r = await run('openssl', ['s_client', '-connect', `${vip}:15008`, '-servername', 'hbone-gateway.nodemesh', '-alpn', 'h2', '-CAfile', bundle(), '-verify_return_error', '-cert', path.join(dir, 'client.pem'), '-key', path.join(dir, 'client-key.pem'), '-showcerts'], undefined, '');
    t.regex(r.stdout, /Verify return code: 0 \(ok\)/, r.stderr);
    t.regex(r.stdout, /ALPN protocol: h2/);
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)?.[0];
    t.truthy(pem, 'openssl printed the server certificate');
    t.is(new X509Certificate(pem!).subjectAltName, `URI:${GATEWAY_ID}`);
  });

  test.serial('a mesh SVID tunnels through it to node-b’s node proxy: the echo pod answers over TLS end to end, and the tunnel is counted', async (t) => {
    const s = await snapshot();
    const byUid = (uid: string) => s.workloads.find((w) => w.uid === uid) as Workload;
    const client = byUid('shop/client');
    const web = byUid('shop/web-1');
    t.is(web.node, 'node-b');
    t.is(web.network, NETWORK);
    const before = sumMetric(parsePromText(await (await admin('/metrics')).text()), 'nodemesh_gateway_tunnels_total');
    const connector = new HboneConnector({
      identity: new FixedIdentityProvider(s.trustBundle, [await clientSvid()]),
      nodeIp: () => lab.node('node-b').ip,
      connectTimeoutMs: 15_000,
      via: () => ({ address: vip, port: 15008, identity: GATEWAY_ID }),
    });
    t.teardown(() => connector.close());
    const stream = await connector.connect({ source: client, sourceAddress: client.ip, sourcePort: 40000, ip: web.ip, port: 8080, destination: web });
    const answer = await new Promise<string>((resolve, reject) => {
      let got = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (got += d));
      stream.once('end', () => resolve(got));
      stream.once('error', reject);
      stream.end('GET /through-the-gateway HTTP/1.1\r\nHost: web.shop\r\nConnection: close\r\n\r\n');
    });
    t.regex(answer, /^HTTP\/1\.1 200/);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { pod: string; path: string };
    t.is(body.pod, 'web-1');
    t.is(body.path, '/through-the-gateway');
    t.is(sumMetric(parsePromText(await (await admin('/metrics')).text()), 'nodemesh_gateway_tunnels_total') - before, 1);
  });

  test.serial('it is no open relay: a CONNECT to anything but a node proxy’s 15008 of its network is refused with 400 and counted', async (t) => {
    const svid = await clientSvid();
    const before = await refusedBy('target');
    const session = http2.connect(`https://${vip}:15008`, {
      servername: 'hbone-gateway.nodemesh',
      ca: (await snapshot()).trustBundle,
      cert: svid.certChainPem,
      key: svid.keyPem,
      checkServerIdentity: () => undefined,
    });
    session.on('error', () => {});
    t.teardown(() => session.destroy());
    const status = (authority: string) =>
      new Promise<number>((resolve, reject) => {
        const s = session.request({ ':method': 'CONNECT', ':authority': authority });
        s.once('response', (h) => resolve(Number(h[':status'])));
        s.once('error', reject);
      });
    t.is(await status(lab.state.controlAddress!.grpc), 400, 'the control plane');
    t.is(await status(`${lab.node('node-b').ip}:15020`), 400, "node-b's admin port");
    t.is(await status(`${lab.pod('web-1').ip}:8080`), 400, 'a pod directly');
    t.is((await refusedBy('target')) - before, 3);
  });

  test.serial('a peer without a mesh SVID is refused at the handshake: no certificate, or the node credential (not of the trust bundle)', async (t) => {
    const before = await refusedBy('handshake');
    const nodeCredential = labNodeCredentialDir(lab.state.stateDir, 'node-a');
    const attempts = [
      {},
      { cert: await readFile(path.join(nodeCredential, 'cert.pem')), key: await readFile(path.join(nodeCredential, 'key.pem')) },
    ];
    for (const creds of attempts) {
      const outcome = await new Promise<string>((resolve) => {
        const socket = tls.connect({ host: vip, port: 15008, servername: 'hbone-gateway.nodemesh', ALPNProtocols: ['h2'], ca: readFileSync(bundle(), 'utf8'), ...creds });
        socket.once('secureConnect', () => socket.write(http2PrefaceProbe));
        socket.once('error', (err) => resolve(`error: ${err.message}`));
        socket.once('close', () => resolve('closed'));
        socket.on('data', () => resolve('data'));
      });
      t.not(outcome, 'data', 'the gateway served a peer without a mesh SVID');
    }
    // the client may see its connection closed before the gateway's handshake error handler
    // has counted it (TLS 1.3: the client's certificate is checked after its side finished)
    const counted = await eventually(async () => ((await refusedBy('handshake')) - before >= 2 ? (await refusedBy('handshake')) - before : undefined), 30_000, 'both refusals counted').catch(async () => (await refusedBy('handshake')) - before);
    t.is(counted, 2);
  });

  test.serial('its /metrics pass promtool and carry the gateway series', async (t) => {
    const text = await (await admin('/metrics')).text();
    t.deepEqual(ourFindings(await promtoolFindings(text)), []);
    for (const name of ['nodemesh_gateway_tunnels_total', 'nodemesh_gateway_tunnels_open', 'nodemesh_gateway_refused_total', 'nodemesh_gateway_allowed_targets', 'nodemesh_gateway_identity_known']) {
      t.regex(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    const m = parsePromText(text);
    t.is(sumMetric(m, 'nodemesh_gateway_allowed_targets'), 2);
    t.is(sumMetric(m, 'nodemesh_gateway_identity_known'), 1);
    t.is(sumMetric(m, 'nodemesh_gateway_tunnels_open'), 0);
  });

  test.serial('SIGTERM: it drains and exits 0, and nothing of it is left (process, listeners)', async (t) => {
    gateway!.kill('SIGTERM');
    t.is(await exited, 0, await logTail());
    t.regex(await readFile(gatewayLog, 'utf8'), /east-west gateway stopped/);
    const ss = await run('ip', ['netns', 'exec', lab.node('node-a').netns, 'ss', '-Htan']);
    t.deepEqual(ss.stdout.split('\n').filter((l) => l.includes(`${vip}:`)).filter((l) => /LISTEN|ESTAB/.test(l)), [], 'no socket of the gateway left');
    const pids = await run('pgrep', ['-f', `--proxy-ip ${vip}`]);
    t.is(pids.stdout.trim(), '', 'no gateway process left');
  });
}

/** An HTTP/2 client preface: a gateway that accepted the peer would answer it with SETTINGS. */
const http2PrefaceProbe = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
