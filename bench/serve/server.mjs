// The peer of bench/serve.sh: @tus/server with its FileStore, as its README sets it up,
// on a loopback port. Usage: node server.mjs DATA_DIR [PORT]
// Prints "tus server: listening on http://127.0.0.1:PORT" on stderr once it listens.
//
// FileStore writes each PATCH body to the upload's file and answers without fsync: its
// acknowledged bytes can be lost by a power cut, unlike livemux's (durable before
// acknowledged). The comparison is livemux with its durability on against the peer as shipped.

import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node server.mjs DATA_DIR [PORT]');
  process.exit(2);
}
const tus = new Server({ path: '/files', datastore: new FileStore({ directory: dir }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  console.error(`tus server: listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
