// A plain, mesh-unaware HTTP server: answers every request with who it is and who called.
//   PORT (default 8080), POD_NAME (default the hostname)
// No dependencies; runs on any Node >= 18.
import http from 'node:http';
import os from 'node:os';

const port = Number(process.env.PORT ?? 8080);
const pod = process.env.POD_NAME ?? os.hostname();

const server = http.createServer((req, res) => {
  const body = JSON.stringify({
    pod,
    remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
    path: req.url,
  });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

server.listen(port, () => console.log(`echo-server ${pod} listening on :${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)).closeAllConnections());
