// A plain, mesh-unaware frontend: for every request it calls the backend Service by name
// (BACKEND_URL, default http://backend/) and answers with its own name and the backend's
// answer. The name resolves to the Service's ClusterIP through /etc/hosts; the mesh (not
// this code) turns that connection into one to a backend pod.
import http from 'node:http';
import os from 'node:os';

const port = Number(process.env.PORT ?? 8080);
const pod = process.env.POD_NAME ?? os.hostname();
const backendUrl = process.env.BACKEND_URL ?? 'http://backend/';

function getJson(url) {
  return new Promise((resolve, reject) => {
    // a new connection per call (agent: false): the node proxy balances connections, so this
    // shows the requests spread over the backend pods
    const req = http.get(url, { timeout: 3000, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (data += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, body: JSON.parse(data) });
        } catch {
          resolve({ status: res.statusCode, body: data });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 3 s`)));
    req.on('error', reject);
  });
}

const server = http.createServer(async (req, res) => {
  const answer = { frontend: { pod, remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`, path: req.url } };
  let status = 200;
  try {
    answer.backend = (await getJson(new URL(req.url ?? '/', backendUrl))).body;
  } catch (err) {
    status = 502;
    answer.error = `backend ${backendUrl}: ${err.code ?? ''} ${err.message}`.trim();
  }
  const body = JSON.stringify(answer);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

server.listen(port, () => console.log(`frontend ${pod} listening on :${port}, backend ${backendUrl}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)).closeAllConnections());
