// The two Store clients against real etcd, in process: 1,000 serial puts and gets through the CLI's gateway client
// and through the agent's etcd3 client against one etcd, interleaved in rounds (target: gateway / etcd3 at most 1.2,
// the gateway being the one a command pays); then the failover time of each when the leader of a 3-member cluster
// is killed: from the kill to the first put that succeeds, median of several runs (target at most 1 s each).
// A report, not a gate: exits 0 once measured; the last line says PASS/FAIL.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = (p) => fileURLToPath(new URL(`../../dist/${p}`, import.meta.url));
if (!existsSync(dist('state/store.js')) || !existsSync(dist('state/etcd3-store.js'))) {
  console.error('store: build first (npm run bench does)');
  process.exit(1);
}
const { connectEtcd } = await import(dist('state/store.js'));
const { connectEtcd3 } = await import(dist('state/etcd3-store.js'));

const OPS = Number(process.env.KNARR_BENCH_OPS ?? 1000);
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 3);
const FAILOVERS = Number(process.env.KNARR_BENCH_FAILOVERS ?? 10);
const clients = { gateway: (urls) => connectEtcd(urls), etcd3: (urls) => connectEtcd3(urls) };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

/** n etcd members on 127.0.0.1 in dir, each killable; resolves once every member answers /health. */
async function startCluster(dir, n) {
  const clientsPorts = [];
  const peers = [];
  for (let i = 0; i < n; i++) {
    clientsPorts.push(await freePort());
    peers.push(await freePort());
  }
  const urls = clientsPorts.map((p) => `http://127.0.0.1:${p}`);
  const initial = peers.map((p, i) => `m${i}=http://127.0.0.1:${p}`).join(',');
  const procs = urls.map((url, i) =>
    spawn(
      'etcd',
      [
        ...['--name', `m${i}`, '--data-dir', join(dir, `m${i}`), '--listen-client-urls', url, '--advertise-client-urls', url],
        ...['--listen-peer-urls', `http://127.0.0.1:${peers[i]}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peers[i]}`],
        ...['--initial-cluster', initial, '--initial-cluster-token', dir, '--heartbeat-interval', '100', '--election-timeout', '1000'],
      ],
      { stdio: 'ignore' },
    ),
  );
  const until = Date.now() + 30_000;
  for (const url of urls) {
    for (;;) {
      try {
        const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
        if (r.ok && (await r.text()).includes('true')) break;
      } catch {
        /* not up yet */
      }
      if (Date.now() > until) throw new Error(`etcd at ${url} did not become healthy`);
      await sleep(100);
    }
  }
  // A process killed by a signal has exitCode null and signalCode set.
  const alive = (p) => p.exitCode === null && p.signalCode === null;
  const status = async (url) => {
    const r = await fetch(`${url}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
    return r.json();
  };
  return {
    urls,
    async leader() {
      for (let tries = 0; tries < 100; tries++) {
        const ids = await Promise.all(urls.map((u, i) => (alive(procs[i]) ? status(u).catch(() => null) : null)));
        const lead = ids.find((s) => s?.leader && s.leader !== '0')?.leader;
        const i = ids.findIndex((s) => s?.header?.member_id === lead);
        if (i >= 0) return i;
        await sleep(100);
      }
      throw new Error('no member leads');
    },
    kill(i) {
      const dead = new Promise((r) => procs[i].once('exit', r));
      procs[i].kill('SIGKILL');
      return dead;
    },
    async stop() {
      await Promise.all(procs.map((p) => (alive(p) ? new Promise((r) => p.once('exit', r).kill('SIGKILL')) : null)));
    },
  };
}

/** ms for OPS serial puts, then OPS serial gets of the same keys. */
async function serial(store, prefix) {
  const t0 = performance.now();
  for (let i = 0; i < OPS; i++) await store.put(`${prefix}${i}`, 'v'.repeat(100));
  const t1 = performance.now();
  for (let i = 0; i < OPS; i++) await store.get(`${prefix}${i}`);
  const t2 = performance.now();
  return { put: t1 - t0, get: t2 - t1 };
}

/** ms from the leader's kill to the first put that succeeds through a client connected before it, and to a new leader. */
async function failover(name, dir) {
  const cluster = await startCluster(dir, 3);
  const store = await clients[name](cluster.urls);
  try {
    for (let i = 0; i < 20; i++) await store.put('/bench/failover/warm', String(i));
    const leader = await cluster.leader();
    await cluster.kill(leader);
    const t0 = performance.now();
    // etcd's own part: until a surviving member names a new leader (polled beside the client's puts).
    const elected = cluster.leader().then(() => performance.now() - t0);
    for (;;) {
      try {
        await store.put('/bench/failover/after', 'x');
        return { client: performance.now() - t0, election: await elected };
      } catch {
        /* the client gave up on this call: the next one counts on */
      }
    }
  } finally {
    await store.close();
    await cluster.stop();
  }
}

const base = mkdtempSync(join(tmpdir(), 'knarr-bench-store-'));
try {
  const single = await startCluster(join(base, 'single'), 1);
  const results = { gateway: { put: [], get: [] }, etcd3: { put: [], get: [] } };
  try {
    const stores = { gateway: await clients.gateway(single.urls), etcd3: await clients.etcd3(single.urls) };
    // A warm-up of each, then rounds in alternating order so neither always runs on a warmer etcd.
    for (const name of Object.keys(stores)) for (let i = 0; i < 100; i++) await stores[name].put(`/bench/warm/${name}/${i}`, 'v');
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of r % 2 === 0 ? ['gateway', 'etcd3'] : ['etcd3', 'gateway']) {
        const m = await serial(stores[name], `/bench/${name}/${r}/`);
        results[name].put.push(m.put);
        results[name].get.push(m.get);
      }
    }
    for (const s of Object.values(stores)) await s.close();
  } finally {
    await single.stop();
  }
  console.log(`store: ${OPS} serial puts then ${OPS} serial gets per client, ${ROUNDS} interleaved rounds, one etcd; median`);
  const total = {};
  for (const name of ['gateway', 'etcd3']) {
    const put = median(results[name].put);
    const get = median(results[name].get);
    total[name] = put + get;
    console.log(
      `  ${name.padEnd(8)} puts ${put.toFixed(0).padStart(6)} ms (${((put / OPS) * 1000).toFixed(0)} us each)  gets ${get.toFixed(0).padStart(6)} ` +
        `ms (${((get / OPS) * 1000).toFixed(0)} us each)`,
    );
  }
  const ratio = total.gateway / total.etcd3;
  console.log(`  gateway / etcd3: ${ratio.toFixed(2)} (target <= 1.2)`);

  const failovers = { gateway: [], etcd3: [] };
  for (let r = 0; r < FAILOVERS; r++) {
    for (const name of ['gateway', 'etcd3']) failovers[name].push(await failover(name, join(base, `f-${name}-${r}`)));
  }
  console.log(`store: failover when the leader of 3 members is killed (election timeout 1 s), ${FAILOVERS} runs each; median`);
  const med = {};
  for (const name of ['gateway', 'etcd3']) {
    const xs = failovers[name];
    const client = xs.map((x) => x.client);
    // The client's own part: how much later than the new leader its first put went through.
    const extra = xs.map((x) => Math.max(0, x.client - x.election));
    med[name] = { client: median(client), election: median(xs.map((x) => x.election)), extra: median(extra) };
    console.log(
      `  ${name.padEnd(8)} kill to first put ${med[name].client.toFixed(0)} ms (min ${Math.min(...client).toFixed(0)}, ` +
        `max ${Math.max(...client).toFixed(0)}; target <= 1000)  new leader after ${med[name].election.toFixed(0)} ms  client's own ` +
        `part ${med[name].extra.toFixed(0)} ms`,
    );
  }
  const ok = ratio <= 1.2 && med.gateway.client <= 1000 && med.etcd3.client <= 1000;
  console.log(
    `store: ratio ${ratio.toFixed(2)} (target 1.2); failover gateway ${med.gateway.client.toFixed(0)} ms, etcd3 ${med.etcd3.client.toFixed(0)} ms ` +
      `(target 1000; etcd's election alone ${med.etcd3.election.toFixed(0)} ms) ${ok ? 'PASS' : 'FAIL'}`,
  );
} finally {
  rmSync(base, { recursive: true, force: true });
}
// gRPC keeps timers of its own after close: the report is done.
process.exit(0);
