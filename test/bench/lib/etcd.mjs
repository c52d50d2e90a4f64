// A private one-member etcd for a benchmark, started with the managed etcd's own flags (knarr etcd up: auto-compaction,
// quota), on free ports and a directory of its own; and its Prometheus metrics, the count every benchmark trusts.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = (p) => fileURLToPath(new URL(`../../../dist/${p}`, import.meta.url));

export const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

/** address: where clients reach it (another network namespace cannot reach the loopback); the peer stays on the loopback. */
export async function startEtcd(dir, address = '127.0.0.1') {
  const { etcdArgv } = await import(dist('host/etcd-server.js'));
  const clientUrl = `http://${address}:${await freePort()}`;
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const argv = etcdArgv({ name: 'bench', clientUrl, peerUrl, dataDir: join(dir, 'etcd'), tls: null });
  // Its unix listener is named relative to the working directory: the benchmark's own.
  const proc = spawn(argv[0], argv.slice(1), { cwd: dir, stdio: 'ignore' });
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
      if (r.ok && (await r.text()).includes('true')) break;
    } catch {
      /* not up yet */
    }
    if (proc.exitCode !== null || Date.now() > until) throw new Error(`etcd at ${clientUrl} did not become healthy`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: clientUrl,
    pid: proc.pid,
    /** Every sample of /metrics: name -> [{labels, value}]. */
    async metrics() {
      const text = await (await fetch(`${clientUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
      const out = new Map();
      for (const line of text.split('\n')) {
        const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
        if (!m) continue;
        const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
        if (!out.has(m[1])) out.set(m[1], []);
        out.get(m[1]).push({ labels, value: Number(m[3]) });
      }
      return out;
    },
    stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
      return new Promise((r) => proc.once('exit', r).kill('SIGKILL'));
    },
  };
}

/** The sum of a metric's samples whose labels match every one given. */
export function sum(metrics, name, match = {}) {
  return (metrics.get(name) ?? []).filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}
