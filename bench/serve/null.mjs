// A tus server that keeps nothing: it answers POST/PATCH/HEAD at once (PATCH after reading
// the body). bench.mjs runs the load generator against it first, so the generator's own
// latency and CPU at the largest N are known: what it adds to the real servers' numbers.
// Usage: node null.mjs  (prints "null server: listening on http://127.0.0.1:PORT" on stderr)

import http from 'node:http';

const offsets = new Map();
let next = 0;
const server = http.createServer((req, res) => {
  const t = { 'Tus-Resumable': '1.0.0' };
  const id = req.url.split('/').pop();
  if (req.method === 'POST') {
    const name = String(next++);
    offsets.set(name, 0);
    req.resume();
    req.on('end', () => {
      res.writeHead(201, { ...t, Location: `/files/${name}`, 'Content-Length': 0 });
      res.end();
    });
  } else if (req.method === 'PATCH' || req.method === 'HEAD') {
    let off = offsets.get(id) ?? 0;
    req.on('data', (d) => (off += d.length));
    req.on('end', () => {
      offsets.set(id, off);
      res.writeHead(req.method === 'PATCH' ? 204 : 200, { ...t, 'Upload-Offset': off, 'Cache-Control': 'no-store' });
      res.end();
    });
  } else {
    res.writeHead(404, { 'Content-Length': 0 });
    res.end();
  }
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  console.error(`null server: listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
