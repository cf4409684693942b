// A plain traffic driver: GETs TARGET_URL (default http://frontend/) every INTERVAL_MS
// (default 1000) and prints one JSON line per answer or error. COUNT (default: forever)
// stops it after that many requests, with exit code 1 if any failed.
import http from 'node:http';

const target = process.env.TARGET_URL ?? 'http://frontend/';
const interval = Number(process.env.INTERVAL_MS ?? 1000);
const count = process.env.COUNT ? Number(process.env.COUNT) : Infinity;
let failed = 0;

function once(i) {
  return new Promise((resolve) => {
    const started = Date.now();
    const req = http.get(target, { timeout: 5000 }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (data += c));
      res.on('end', () => {
        if (res.statusCode !== 200) failed++;
        console.log(JSON.stringify({ i, status: res.statusCode, ms: Date.now() - started, body: safeJson(data) }));
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout after 5 s')));
    req.on('error', (err) => {
      failed++;
      console.log(JSON.stringify({ i, error: `${err.code ?? ''} ${err.message}`.trim(), ms: Date.now() - started }));
      resolve();
    });
  });
}

function safeJson(s) {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

let stop = false;
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => (stop = true));
for (let i = 0; i < count && !stop; i++) {
  await once(i);
  if (i + 1 < count) await new Promise((r) => setTimeout(r, interval));
}
process.exit(failed > 0 ? 1 : 0);
