// Placements through the real store and scheduler against one real etcd: 10,000 daemonized job intents submitted
// (each intent written, as `knarr job run -d` writes it, but with no host yet) and placed across 1,000 simulated hosts
// by an agent's reconciler (the scheduler's choice recorded with its compare-and-swap on the intent, and the job's
// history), end to end; against the same number of plain etcd transactions of the same size through the etcd3 client
// in the same run: per job a create-if-absent of the intent and a compare-and-swap of it placed (target at least
// 1,000 placements a second; the ratio reported). KNARR_BENCH_JOBS, KNARR_BENCH_HOSTS and KNARR_BENCH_CONCURRENCY
// change it. A report, not a gate: exits 0 once measured.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd, sum } from './lib/etcd.mjs';

const dist = (p) => fileURLToPath(new URL(`../../dist/${p}`, import.meta.url));
if (!existsSync(dist('daemon/reconcile.js'))) {
  console.error('placements: build first (npm run bench does)');
  process.exit(1);
}
const { connectEtcd3 } = await import(dist('state/etcd3-store.js'));
const { HostRepo } = await import(dist('state/hosts.js'));
const { JobRepo } = await import(dist('state/jobs.js'));
const { parseJobSpec } = await import(dist('core/job-spec.js'));
const { Reconciler } = await import(dist('daemon/reconcile.js'));
const { DockerEngine } = await import(dist('host/docker.js'));

const JOBS = Number(process.env.KNARR_BENCH_JOBS ?? 10_000);
const HOSTS = Number(process.env.KNARR_BENCH_HOSTS ?? 1000);
// Submissions in flight at once: as many CLIs (or one API) submitting together.
const CONCURRENCY = Number(process.env.KNARR_BENCH_CONCURRENCY ?? 64);
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 2);
const GiB = 1024 ** 3;

/** Runs fn over items, at most n at a time. */
async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

/** The docker engine of the placing agent's host: no containers (placing needs none). */
function stubEngine(sock) {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/_ping') return res.writeHead(200, { 'api-version': '1.41' }).end('OK');
    if (/^\/v[\d.]+\/containers\/json$/.test(path)) return res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `${req.method} ${path}: not in the simulation` }));
  });
  return new Promise((resolve) => server.listen(sock, () => resolve(server)));
}

const specOf = (i) =>
  parseJobSpec(
    {
      name: `job-${i}`,
      image: 'registry.example/app:1.4',
      command: ['serve', '--port', '8080'],
      cpu: `${100 + (i % 5) * 100}m`,
      memory: `${64 * (1 + (i % 4))}M`,
      env: { ROLE: i % 2 ? 'web' : 'worker' },
    },
    'bench',
  );

const dir = mkdtempSync(join(tmpdir(), 'knarr-bench-placements-'));
let etcd = null;
let engineServer = null;
const stores = [];
try {
  etcd = await startEtcd(dir);
  engineServer = await stubEngine(join(dir, 'engine.sock'));

  const store = await connectEtcd3([etcd.url], { attemptTimeoutMs: 10_000, deadlineMs: 60_000 });
  stores.push(store);
  const { Etcd3 } = await import('etcd3');
  const client = new Etcd3({ hosts: [etcd.url] });
  const specs = Array.from({ length: JOBS }, (_, i) => specOf(i));
  const problems = [];

  /** knarr: hosts up (records and liveness keys, as their agents write them), then the jobs submitted and placed. */
  async function knarrRound(fleet) {
    const hosts = new HostRepo(store, fleet);
    const jobs = new JobRepo(store, fleet);
    const lease = await store.grantLease(3600);
    const now = new Date().toISOString();
    await pool(
      Array.from({ length: HOSTS }, (_, i) => `host-${String(i).padStart(5, '0')}`),
      CONCURRENCY,
      async (name) => {
        await hosts.put({
          name,
          address: 'http://127.0.0.1:7946',
          dockerEndpoint: 'unix:///run/docker.sock',
          tags: [],
          capacity: { cpu: 16_000, memory: 64 * GiB },
          load: { runningJobs: 0, freeMemory: 60 * GiB },
          state: 'ok',
          join: 'ok',
          joinedAt: now,
          updatedAt: now,
          restartGraceSeconds: 30,
        });
        await hosts.markAlive(name, lease, { pid: 1, address: 'http://127.0.0.1:7946', since: now });
      },
    );
    const reconciler = new Reconciler(
      { host: 'host-00000', fleet, serviceAddress: '127.0.0.1', prune: false, dotBinds: async () => [], strategy: 'spread' },
      new DockerEngine(join(dir, 'engine.sock'), false),
      jobs,
      hosts,
      { direct: true },
      (line) => {
        if (problems.length < 5 && !/^placed \d+ jobs/.test(line)) problems.push(line);
      },
    );
    const m0 = await etcd.metrics();
    const t0 = performance.now();
    await pool(specs, CONCURRENCY, async (spec) => {
      const ok = await jobs.createIntent(spec.name, {
        spec,
        host: null,
        desired: 'running',
        generation: 0,
        managed: true,
        createdAt: new Date().toISOString(),
      });
      if (!ok) throw new Error(`job ${spec.name} exists already`);
    });
    const t1 = performance.now();
    await reconciler.pass();
    const t2 = performance.now();
    const m1 = await etcd.metrics();
    const intents = await jobs.intents();
    const perHost = new Map();
    for (const i of intents) if (i.host) perHost.set(i.host, (perHost.get(i.host) ?? 0) + 1);
    const reqs = (match) => sum(m1, 'grpc_server_handled_total', match) - sum(m0, 'grpc_server_handled_total', match);
    return {
      submit: t1 - t0,
      place: t2 - t1,
      placed: intents.filter((i) => i.host !== null).length,
      perHost,
      bytes: Buffer.byteLength(JSON.stringify(intents[0])),
      requests: {
        all: reqs({ grpc_type: 'unary' }),
        txn: reqs({ grpc_method: 'Txn' }),
        range: reqs({ grpc_method: 'Range' }),
        put: reqs({ grpc_method: 'Put' }),
      },
    };
  }

  /** Plain etcd: per job a create-if-absent transaction of an intent's size, then a read and a compare-and-swap transaction of it. */
  async function bareRound(prefix, bytes) {
    const value = 'v'.repeat(bytes);
    const b0 = performance.now();
    await pool(specs, CONCURRENCY, async (spec) => {
      const key = `${prefix}${spec.name}`;
      await client.if(key, 'Create', '==', 0).then(client.put(key).value(value)).commit();
    });
    const b1 = performance.now();
    await pool(specs, CONCURRENCY, async (spec) => {
      const key = `${prefix}${spec.name}`;
      const rev = (await client.get(key).exec()).kvs[0].mod_revision;
      await client.if(key, 'Mod', '==', rev).then(client.put(key).value(value)).commit();
    });
    return { create: b1 - b0, cas: performance.now() - b1 };
  }

  // A warm-up of both clients (etcd's first writes, the JIT), then rounds in alternating order.
  await pool(
    Array.from({ length: 500 }, (_, i) => i),
    CONCURRENCY,
    async (i) => {
      await store.createIfAbsent(`/warm/knarr/${i}`, 'v'.repeat(400));
      await client
        .if(`/warm/bare/${i}`, 'Create', '==', 0)
        .then(client.put(`/warm/bare/${i}`).value('v'.repeat(400)))
        .commit();
    },
  );
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const k = r % 2 === 0 ? await knarrRound(`place${r}`) : null;
    const b = await bareRound(`/bare/${r}/jobs/`, k?.bytes ?? 418);
    rounds.push({ k: k ?? (await knarrRound(`place${r}`)), b });
  }
  client.close();

  console.log(`placements: ${JOBS} daemonized job intents on ${HOSTS} hosts, ${CONCURRENCY} submissions in flight, one etcd, ${ROUNDS} rounds`);
  for (const { k, b } of rounds) {
    const counts = [...k.perHost.values()];
    console.log(
      `  knarr   submit ${k.submit.toFixed(0)} ms + place (one agent's reconciler pass) ${k.place.toFixed(0)} ms: ` +
        `${((JOBS / (k.submit + k.place)) * 1000).toFixed(0)} placements/s end to end (${k.placed} placed on ${k.perHost.size} hosts, ` +
        `${Math.min(...counts)}-${Math.max(...counts)} each; intent ${k.bytes} bytes; ${(k.requests.all / JOBS).toFixed(1)} requests a job: ` +
        `${k.requests.txn} txns, ${k.requests.range} reads, ${k.requests.put} puts)`,
    );
    console.log(
      `  etcd3   create txn ${b.create.toFixed(0)} ms + read and compare-and-swap txn ${b.cas.toFixed(0)} ` +
        `ms: ${((JOBS / (b.create + b.cas)) * 1000).toFixed(0)} jobs/s` +
        `  ratio ${((k.submit + k.place) / (b.create + b.cas)).toFixed(2)}`,
    );
  }
  for (const p of problems) console.log(`  (${p})`);
  const knarrMs = rounds.reduce((a, x) => a + x.k.submit + x.k.place, 0);
  const bareMs = rounds.reduce((a, x) => a + x.b.create + x.b.cas, 0);
  const rate = ((JOBS * ROUNDS) / knarrMs) * 1000;
  const placed = rounds.every((x) => x.k.placed === JOBS);
  console.log(
    `placements: ${rate.toFixed(0)}/s end to end (target 1000), ${(knarrMs / bareMs).toFixed(2)}x the bare transactions' time ` +
      `(${(((JOBS * ROUNDS) / bareMs) * 1000).toFixed(0)} jobs/s) ${rate >= 1000 && placed ? 'PASS' : 'FAIL'}`,
  );
} finally {
  for (const s of stores) await s.close().catch(() => undefined);
  engineServer?.close();
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
