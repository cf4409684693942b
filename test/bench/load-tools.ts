// The load generators the scenarios run inside the client pods, and what is read from their
// output: the suite's own open-loop generator (pods/open-loop.ts), wrk (HTTP/1.1, closed
// loop), h2load (HTTP/2, and gRPC unary: h2load posts one length-prefixed message with
// content-type application/grpc to the grpc-js backend, each call proven once beforehand with
// a real grpc-js client, pods/grpc-check.ts), and the TCP clients (pods/tcp-clients.ts).
// Parsing is pure and exported for the unit test.
import type { BenchLab } from './bench-lab.js';
import { GRPC_METHOD } from './grpc-method.js';
import { lastJson, podProgram } from './lab-exec.js';
import { VARIANTS, type Proto, type VariantId } from './settings.js';

export interface OpenLoopResult {
  rate: number;
  durationS: number;
  connections: number;
  scheduled: number;
  completed: number;
  errors: number;
  non2xx: number;
  reconnects: number;
  timeouts: number;
  achievedRps: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  lagMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  sendDelayMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  eventLoopUtilization: number;
  cpuSeconds: number;
}

const url = (lab: BenchLab, v: VariantId, proto: Proto, path = '/') => {
  const t = lab.target(v, proto);
  return `http://${t.host}:${t.port}${path}`;
};

export async function openLoop(
  lab: BenchLab,
  v: VariantId,
  o: { rate: number; seconds: number; warmup: number; connections: number },
): Promise<OpenLoopResult> {
  const argv = [
    'node',
    podProgram('open-loop.js'),
    '--url',
    url(lab, v, 'h1'),
    '--rate',
    String(o.rate),
    '--duration',
    String(o.seconds),
    '--warmup',
    String(o.warmup),
    '--connections',
    String(o.connections),
    '--grace',
    '5',
  ];
  const { stdout } = await lab.run(VARIANTS[v].client, argv, (o.seconds + o.warmup + 30) * 1000);
  return lastJson<OpenLoopResult>(stdout, 'open-loop');
}

export interface SaturationResult {
  rps: number;
  /** requests answered 2xx (what the rate counts) */
  ok: number;
  /** non-2xx, socket errors, failed or timed-out requests */
  errors: number;
  /** the tool's own latency percentiles (closed loop: for information, not the latency scenario's) */
  p50Ms: number;
  p99Ms: number;
}

const toMs = (v: string, unit: string) => Number(v) * (unit === 'us' ? 1e-3 : unit === 's' ? 1e3 : unit === 'm' ? 60e3 : 1);

/** wrk --latency output → rate, errors and its latency distribution's p50/p99. */
export function parseWrk(out: string): SaturationResult {
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\b`, 'm').exec(out);
    return m ? toMs(m[1]!, m[2]!) : NaN;
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in /.exec(out);
  if (!rps || !total) throw new Error(`wrk printed no rate: ${out.slice(-300)}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { rps: Number(rps[1]), ok: Number(total[1]) - non2xx, errors: non2xx + socketErrors, p50Ms: pct('50'), p99Ms: pct('99') };
}

/** h2load output → rate (2xx per second over the measured time), errors, mean-based latency. */
export function parseH2load(out: string): SaturationResult {
  const fin = /finished in ([\d.]+)(us|ms|s), ([\d.]+) req\/s/.exec(out);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (!fin || !req || !codes) throw new Error(`h2load printed no summary: ${out.slice(-300)}`);
  const seconds = toMs(fin[1]!, fin[2]!) / 1000;
  const ok = Math.min(Number(codes[1]), Number(req[4]));
  const errors = Number(req[5]) + Number(req[6]) + Number(req[7]) + Number(codes[2]) + Number(codes[3]) + Number(codes[4]);
  // h2load prints min/max/mean/sd of the request time, no percentiles: mean and max stand in
  const lat = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(out);
  return { rps: ok / seconds, ok, errors, p50Ms: lat ? toMs(lat[5]!, lat[6]!) : NaN, p99Ms: lat ? toMs(lat[3]!, lat[4]!) : NaN };
}

export async function wrk(lab: BenchLab, v: VariantId, c: number, seconds: number): Promise<SaturationResult> {
  // wrk takes whole seconds
  const d = Math.max(1, Math.round(seconds));
  const { stdout } = await lab.run(
    VARIANTS[v].client,
    ['wrk', '-t1', `-c${c}`, `-d${d}s`, '--latency', url(lab, v, 'h1')],
    (d + 30) * 1000,
  );
  return parseWrk(stdout);
}

/** h2load over HTTP/2 (one stream per connection: concurrency c is c connections, as wrk's), or gRPC unary calls. */
export async function h2load(
  lab: BenchLab,
  v: VariantId,
  c: number,
  seconds: number,
  grpc?: { requestFile: string },
): Promise<SaturationResult> {
  const d = Math.max(1, Math.round(seconds));
  // no warm-up: what the proxies' CPU is divided by must be every request they carried
  const args = ['h2load', '-c', String(c), '-m', '1', '-D', String(d)];
  if (grpc)
    args.push('-d', grpc.requestFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', url(lab, v, 'grpc', GRPC_METHOD));
  else args.push(url(lab, v, 'h2'));
  const { stdout } = await lab.run(VARIANTS[v].client, args, (d + 30) * 1000);
  return parseH2load(stdout);
}

/** One grpc-js call through the variant's path; throws unless it succeeded with the 1 KiB answer. */
export async function grpcCheck(lab: BenchLab, v: VariantId): Promise<void> {
  const t = lab.target(v, 'grpc');
  const { stdout } = await lab.run(VARIANTS[v].client, ['node', podProgram('grpc-check.js'), `${t.host}:${t.port}`], 30_000);
  const r = lastJson<{ ok: boolean; bytes?: number; error?: string }>(stdout, 'grpc-check');
  if (!r.ok || r.bytes !== 1024) throw new Error(`a grpc-js call through ${v} failed: ${r.error ?? `answer of ${r.bytes} bytes`}`);
}

export interface BulkResult {
  sentBytes: number;
  receivedBytes: number;
  seconds: number;
  mbPerSecond: number;
  gbitPerSecond: number;
}

export async function bulk(lab: BenchLab, v: VariantId, seconds: number): Promise<BulkResult> {
  const t = lab.target(v, 'bulk');
  const { stdout } = await lab.run(
    VARIANTS[v].client,
    ['node', podProgram('tcp-clients.js'), 'bulk', t.host, String(t.port), String(seconds)],
    (seconds + 60) * 1000,
  );
  const r = lastJson<BulkResult>(stdout, 'bulk client');
  if (r.receivedBytes !== r.sentBytes) throw new Error(`bulk through ${v}: sent ${r.sentBytes} bytes, the sink counted ${r.receivedBytes}`);
  return r;
}

export interface ConnectResult {
  connections: number;
  errors: number;
  connectMs: { p50: number; p90: number; p99: number; max: number };
  firstByteMs: { p50: number; p90: number; p99: number; max: number };
}

export async function connects(lab: BenchLab, client: string, host: string, port: number, n: number): Promise<ConnectResult> {
  const { stdout } = await lab.run(
    client,
    ['node', podProgram('tcp-clients.js'), 'connect', host, String(port), String(n)],
    60_000 + n * 100,
  );
  return lastJson<ConnectResult>(stdout, 'connect client');
}
