// The benchmark's backend (runs inside a lab pod; the same program behind every variant):
//   H1_PORT (8080)    HTTP/1.1, every request answered 200 with a 1 KiB body, keep-alive
//   H2_PORT (8081)    h2c (HTTP/2 prior knowledge), the same answer
//   SINK_PORT (9000)  bulk TCP: counts what the client sends; at its end (half-close)
//                     answers the count as 8 bytes (big-endian) and closes
//   ECHO_PORT (9001)  TCP echo (connection set-up and held-connection scenarios)
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

export const RESPONSE_BYTES = 1024;
const body = Buffer.alloc(RESPONSE_BYTES, 'x');
const port = (name: string, dflt: number) => Number(process.env[name] ?? dflt);

const h1 = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': RESPONSE_BYTES });
  res.end(body);
});
h1.keepAliveTimeout = 120_000;
h1.headersTimeout = 125_000;
h1.listen(port('H1_PORT', 8080));

const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
h2.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'content-length': String(RESPONSE_BYTES) });
  stream.end(body);
});
h2.on('sessionError', () => {});
h2.listen(port('H2_PORT', 8081));

const sink = net.createServer({ allowHalfOpen: true }, (s) => {
  let n = 0;
  s.on('data', (d: Buffer) => (n += d.length));
  s.on('error', () => {});
  s.on('end', () => {
    const out = Buffer.alloc(8);
    out.writeBigUInt64BE(BigInt(n));
    s.end(out);
  });
});
sink.listen(port('SINK_PORT', 9000));

const echo = net.createServer((s) => {
  s.on('error', () => {});
  s.pipe(s);
});
echo.maxConnections = 50_000;
echo.listen(port('ECHO_PORT', 9001), () => console.log(`bench backend ${process.env.POD_NAME ?? ''} listening`));

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
