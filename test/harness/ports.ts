import { createServer } from 'node:net';

/** Ports this test process has handed out: the kernel may offer a just-closed port again, and two of them must differ. */
const given = new Set<number>();

function probe(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A TCP port on host (127.0.0.1 unless told) that was free a moment ago, never one this process was given before. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await probe(host);
    if (given.has(port)) continue;
    given.add(port);
    return port;
  }
  throw new Error('no port left that was not handed out already');
}
