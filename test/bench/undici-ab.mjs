// Measurement prototype (issue 15, not part of the engine): the L7 engine as it is (HTTP/1.1
// upstream through http.request + http.Agent pools) against the same engine whose upstream try
// goes through an undici Pool (dispatch API) over the same connector Duplexes, in one process,
// the same backend and wrk, alternating rounds; prints the engine's CPU per request and the
// median undici/node ratio. undici is not a dependency: install it somewhere (npm install
// --no-save undici@6 in a scratch directory) and point UNDICI at its index.js.
//   UNDICI=/tmp/u/node_modules/undici/index.js ROUNDS=8 D=3 node test/bench/undici-ab.mjs
// (after npx tsc -p .). GET requests only: a streamed request body is not done here.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
const W = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { Pool } = await import(process.env.UNDICI ?? 'undici');
const { Harness, snapshot } = await import(`${W}/dist/test/helpers/l7-harness.js`);
const { Http1Exchange } = await import(`${W}/dist/agent/l7/http1.js`);
const { forwardRaw } = await import(`${W}/dist/agent/l7/header-ops.js`);
const { connectWithTimeout, UpstreamError } = await import(`${W}/dist/agent/transport/connector.js`);
const { dialInfo } = await import(`${W}/dist/agent/cluster/cluster.js`);
const { ResponseFlag } = await import(`${W}/dist/agent/transport/response-flags.js`);

class UTry {
  constructor(ex) { this.ex = ex; this.abort = null; this.resume = null; this.discard = false; this.began = false; this.status = 0; this.raw = null; }
  onConnect(abort) { this.abort = abort; }
  onHeaders(status, raw, resume) { this.resume = resume; this.began = true; return this.ex.onUHeaders(this, status, raw); }
  onData(chunk) { return this.ex.onUData(this, chunk); }
  onComplete() { this.ex.onUComplete(this); }
  onError(err) { this.ex.onUError(this, err); }
  onUpgrade() {}
}
const kPools = Symbol('undici pools');
function poolOf(ex, host) {
  const m = (host[kPools] ??= new Map());
  let p = m.get(ex.conn.sourceKey);
  if (!p) {
    const dial = dialInfo(ex.conn, host);
    const cluster = ex.cluster;
    const connector = cluster.connector;
    p = new Pool(`http://${host.endpoint.ip}:${host.endpoint.port}`, {
      connections: null, pipelining: 1,
      connect: (_o, cb) => { connectWithTimeout(connector, dial, cluster.policy.connectionPool.connectTimeoutMs).then((d) => cb(null, d), (e) => cb(e)); },
    });
    m.set(ex.conn.sourceKey, p);
  }
  return p;
}
class UndiciHttp1Exchange extends Http1Exchange {
  sendTry(host) {
    const t = new UTry(this);
    this.ucur = t;
    const body = this.takeBody();
    const h = this.req.headers;
    const noBody = h['content-length'] === undefined && h['transfer-encoding'] === undefined;
    if (!this.bodyEnded && !noBody) throw new Error('prototype: streamed bodies not done');
    poolOf(this, host).dispatch({ path: this.upstreamPath ?? (this.query ? `${this.path}?${this.query}` : this.path), method: this.method, headers: this.requestHeaders(this.dest, this.route), body: body.length ? Buffer.concat(body) : null }, t);
  }
  writeTry() { return true; }
  endTryBody() {}
  abortTry() { const t = this.ucur; this.ucur = undefined; t?.abort?.(new Error('aborted')); }
  discardResponse() { const t = this.ucur; this.ucur = undefined; if (t) t.discard = true; }
  onUHeaders(t, status, raw) {
    if (this.ucur !== t) { t.discard = true; return true; }
    t.status = status; t.raw = raw;
    this.onResponseHead(status, -1);
    return true;
  }
  commitResponse() {
    const t = this.ucur;
    const raw = new Array(t.raw.length);
    for (let i = 0; i < raw.length; i++) raw[i] = t.raw[i].toString('latin1');
    const h = forwardRaw(raw, [this.dest?.headers?.response, this.route?.headers?.response]);
    this.res.sendDate = false;
    this.res.writeHead(t.status, h);
  }
  onUData(t, chunk) { if (t.discard || this.ucur !== t) return true; this.respBytes += chunk.length; return this.res.write(chunk); }
  onDrain() { this.ucur?.resume?.(); }
  onUComplete(t) { if (t.discard || this.ucur !== t) return; this.onUpstreamEnd(); }
  onUError(t, err) {
    if (this.ucur !== t) return;
    if (t.began) return this.onUpstreamCut();
    this.ucur = undefined;
    if (err instanceof UpstreamError) this.onTryFailure('connect-failure', err.flag);
    else this.onTryFailure('reset', ResponseFlag.UpstreamConnectionTermination);
  }
}

function run(cmd, args) { return new Promise((resolve) => { const c = spawn(cmd, args); let o = ''; c.stdout.on('data', (d) => (o += d)); c.on('close', () => resolve(o)); }); }
const PORT = 18280;
const be = spawn(process.execPath, [`${W}/test/fixtures/traffic/backend.js`], { env: { ...process.env, PORT: String(PORT) }, stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 800));
const fake = { name: 'backend', port: PORT, server: undefined, count: 0 };
const a = await new Harness(snapshot([fake], { routes: [], destinations: [] })).listen();
const b = await new Harness(snapshot([fake], { routes: [], destinations: [] })).listen();
// b: every request through the undici exchange
const http1 = b.l7.http1;
http1.removeAllListeners('request');
http1.on('request', (req, res) => {
  const sym = Object.getOwnPropertySymbols(req.socket).find((s) => s.description === 'nodemesh.conn');
  new UndiciHttp1Exchange(b.l7, req.socket[sym], b.state, req, res).start();
});
const D = process.env.D ?? 3;
const C = process.env.C ?? 16;
async function round(h, label) {
  const cpu = process.cpuUsage();
  const out = await run('wrk', ['-t1', `-c${C}`, `-d${D}s`, `${h.url}/`]);
  const used = process.cpuUsage(cpu);
  const n = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0;
  const v = (used.user + used.system) / n;
  console.log(label.padEnd(8), String(n).padStart(6), 'req', `${v.toFixed(1)} µs/req`, bad ? `non-2xx ${bad}` : '');
  return v;
}
await run('wrk', ['-t1', '-c16', '-d1s', `${a.url}/`]); await run('wrk', ['-t1', '-c16', '-d1s', `${b.url}/`]);
const ratios = [];
for (let i = 0; i < Number(process.env.ROUNDS ?? 5); i++) {
  let x, y; if (i % 2) { y = await round(b, "undici"); x = await round(a, "node"); } else { x = await round(a, "node"); y = await round(b, "undici"); }
  ratios.push(y / x); console.log(`round ${i + 1}: undici/node = ${(y / x).toFixed(2)}`);
}
ratios.sort((p, q) => p - q);
console.log('median undici/node CPU per request:', ratios[Math.floor(ratios.length / 2)].toFixed(2));
await a.close(); await b.close(); be.kill(); process.exit(0);
