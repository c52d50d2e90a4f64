// An idle fleet against one real etcd: N of knarr's real agents (default 1,000; the Agent class of `knarr daemon` with
// its own etcd3 store, lease keepalives, watches, reconciler and operation runner each, in a few processes; the hosts
// have no containers, see lib/sim-agents.mjs), plus one real `knarr daemon` on a private dockerd, idle for a while
// (default 300 s). Counted from etcd's own metrics, not knarr's: requests per second in total and per agent (target
// at most 50/s for 1,000 agents), writes per second, db growth per hour; and the real agent's RSS after the idle
// period (target at most 80 MB). KNARR_BENCH_AGENTS, KNARR_BENCH_IDLE_SECONDS, KNARR_BENCH_SETTLE_SECONDS,
// KNARR_BENCH_PROCS and KNARR_BENCH_TTL change it. A report, not a gate: exits 0 once measured.
import { fork, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDockerd } from './lib/dockerd.mjs';
import { benchEnv } from './lib/env.mjs';
import { freePort, startEtcd, sum } from './lib/etcd.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/knarr');
const AGENTS = Number(process.env.KNARR_BENCH_AGENTS ?? 1000);
const IDLE_S = Number(process.env.KNARR_BENCH_IDLE_SECONDS ?? 300);
const SETTLE_S = Number(process.env.KNARR_BENCH_SETTLE_SECONDS ?? 60);
const PROCS = Number(process.env.KNARR_BENCH_PROCS ?? 4);
const TTL = process.env.KNARR_BENCH_TTL ? Number(process.env.KNARR_BENCH_TTL) : null;
const FLEET = 'idle';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (!existsSync(join(ROOT, 'dist/daemon/agent.js'))) {
  console.error('fleet-idle: build first (npm run bench does)');
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'knarr-bench-idle-'));
const children = [];
let etcd = null;
let dockerd = null;
let real = null;
async function cleanUp() {
  for (const c of children) c.kill('SIGKILL');
  if (real && real.exitCode === null) {
    real.kill('SIGKILL');
    await new Promise((r) => real.once('exit', r));
  }
  await dockerd?.stop().catch(() => undefined);
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    void cleanUp().finally(() => process.exit(1));
  });

/** What the agents cost etcd between two samples of its metrics, per second. */
function rates(a, b, seconds) {
  const d = (name, match) => (sum(b, name, match) - sum(a, name, match)) / seconds;
  const unaryByMethod = {};
  for (const s of b.get('grpc_server_handled_total') ?? []) {
    if (s.labels.grpc_type !== 'unary') continue;
    const m = s.labels.grpc_method;
    unaryByMethod[m] = (unaryByMethod[m] ?? 0) + 0;
  }
  for (const m of Object.keys(unaryByMethod)) unaryByMethod[m] = d('grpc_server_handled_total', { grpc_type: 'unary', grpc_method: m });
  const unary = d('grpc_server_handled_total', { grpc_type: 'unary' });
  const keepalives = d('grpc_server_msg_received_total', { grpc_method: 'LeaseKeepAlive' });
  const watchMsgs = d('grpc_server_msg_received_total', { grpc_method: 'Watch' });
  return {
    unary,
    unaryByMethod,
    keepalives,
    watchMsgs,
    requests: unary + keepalives + watchMsgs,
    // Each raft proposal is a write etcd fsyncs; puts and deletes are the keys written.
    proposals: d('etcd_server_proposals_committed_total'),
    keyWrites: d('etcd_mvcc_put_total') + d('etcd_mvcc_delete_total'),
    fsyncs: d('etcd_disk_wal_fsync_duration_seconds_count'),
  };
}

async function status() {
  const r = await fetch(`${etcd.url}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(10_000) });
  const s = await r.json();
  return { revision: Number(s.header.revision), dbSize: Number(s.dbSize), dbSizeInUse: Number(s.dbSizeInUse ?? s.dbSize) };
}

const rssOf = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
const mb = (bytes) => (bytes / 1024 ** 2).toFixed(1);

try {
  etcd = await startEtcd(dir);
  const ttl = TTL ?? 10;
  // The agents, a share per process, started a few at a time in each.
  const names = Array.from({ length: AGENTS }, (_, i) => `sim-${String(i).padStart(5, '0')}`);
  const t0 = performance.now();
  const up = new Array(PROCS).fill(0);
  const ready = [];
  for (let p = 0; p < PROCS; p++) {
    mkdirSync(join(dir, `sim-${p}`), { recursive: true });
    const child = fork(fileURLToPath(new URL('./lib/sim-agents.mjs', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    ready.push(
      new Promise((resolve, reject) => {
        child.on('message', (m) => {
          if (m.up !== undefined) up[p] = m.up;
          if (m.ready !== undefined) resolve(m);
        });
        child.once('exit', (code) => reject(new Error(`a process of simulated agents exited (${code}) while they started`)));
      }),
    );
    child.send({
      cmd: 'start',
      etcd: etcd.url,
      fleet: FLEET,
      ttl,
      dir: join(dir, `sim-${p}`),
      names: names.filter((_, i) => i % PROCS === p),
      concurrency: 4,
    });
  }
  const progress = setInterval(() => console.log(`  ${up.reduce((a, b) => a + b, 0)} of ${AGENTS} agents up`), 15_000);
  const started = await Promise.all(ready).finally(() => clearInterval(progress));
  const failed = started.reduce((a, m) => a + m.failed, 0);
  const upCount = started.reduce((a, m) => a + m.ready, 0);
  console.log(`fleet-idle: ${upCount} simulated agents up in ${((performance.now() - t0) / 1000).toFixed(0)} s in ${PROCS} processes (lease ttl ${ttl} s)`);
  for (const m of started) for (const e of m.errors) console.log(`  (${e})`);
  if (failed > 0) throw new Error(`${failed} simulated agents did not start`);

  // The real agent: `knarr daemon` on a private dockerd, in the same fleet, idle as long as the others.
  if (spawnSync('dockerd', ['--version']).status === 0) {
    mkdirSync(join(dir, 'dockerd'), { recursive: true });
    dockerd = startDockerd(join(dir, 'dockerd'), process.env);
    const env = benchEnv({ DOCKER_HOST: `unix://${dockerd.sock}` });
    for (let i = 0; spawnSync('docker', ['-H', `unix://${dockerd.sock}`, 'version'], { env }).status !== 0; i++) {
      if (i > 300) throw new Error('dockerd did not start');
      await sleep(100);
    }
    const port = await freePort();
    const argv = ['daemon', '--etcd', etcd.url, '--fleet', FLEET, '--state-dir', join(dir, 'real'), '--name', 'real-agent', '--listen', `127.0.0.1:${port}`];
    if (TTL !== null) argv.push('--ttl', String(TTL));
    real = spawn(BIN, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    real.stderr.on('data', (c) => (stderr = (stderr + c).slice(-4000)));
    real.once('exit', (code) => {
      if (code !== null) console.log(`  knarr daemon exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    });
    for (let i = 0; !stderr.includes('agent real-agent up'); i++) {
      if (i > 600 || real.exitCode !== null) throw new Error(`knarr daemon did not come up: ${stderr.slice(-500)}`);
      await sleep(100);
    }
  } else console.log('  (no dockerd: the real agent is not measured)');

  console.log(`  settling ${SETTLE_S} s (agents' start-up passes end), then ${IDLE_S} s idle, measured`);
  await sleep(SETTLE_S * 1000);
  const [m0, s0] = [await etcd.metrics(), await status()];
  const w0 = performance.now();
  await sleep(IDLE_S * 1000);
  const [m1, s1] = [await etcd.metrics(), await status()];
  const seconds = (performance.now() - w0) / 1000;
  const r = rates(m0, m1, seconds);
  const agents = upCount + (real ? 1 : 0);
  const watchers = sum(m1, 'etcd_debugging_mvcc_watcher_total');
  const streams = sum(m1, 'etcd_debugging_mvcc_watch_stream_total');
  const simRss = await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          c.once('message', (m) => resolve(m));
          c.send({ cmd: 'rss' });
        }),
    ),
  );
  const realRss = real && real.exitCode === null ? rssOf(real.pid) : null;

  const per = (x) => (x / agents).toFixed(4);
  console.log(`fleet-idle: ${agents} agents idle ${seconds.toFixed(0)} s against one etcd; etcd's own counters, per second`);
  console.log(`  requests      ${r.requests.toFixed(1).padStart(8)}/s  (${per(r.requests)}/s per agent; target <= 50/s in total)`);
  console.log(
    `    unary RPCs  ${r.unary.toFixed(1).padStart(8)}/s  ${Object.entries(r.unaryByMethod)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ')}`,
  );
  console.log(`    keepalives  ${r.keepalives.toFixed(1).padStart(8)}/s  (lease renewals on the keepalive streams)`);
  console.log(
    `    watch msgs  ${r.watchMsgs.toFixed(1).padStart(8)}/s  (${watchers} watchers on ${streams} streams: ${(watchers / agents).toFixed(1)} per agent)`,
  );
  console.log(`  writes        ${r.proposals.toFixed(2).padStart(8)}/s  raft proposals (fsynced: ${r.fsyncs.toFixed(2)}/s), ${r.keyWrites.toFixed(2)} keys/s`);
  const growth = ((s1.dbSizeInUse - s0.dbSizeInUse) / seconds) * 3600;
  const revs = ((s1.revision - s0.revision) / seconds) * 3600;
  console.log(`  db            ${mb(s1.dbSize)} MB (in use ${mb(s1.dbSizeInUse)} MB); growth ${mb(growth)} MB/h in use, ${revs.toFixed(0)} revisions/h`);
  console.log(
    `  simulated agents' processes: ${simRss.map((m) => `${mb(m.rss)} MB`).join(', ')} (${mb(simRss.reduce((a, m) => a + m.rss, 0) / upCount)} MB per agent)`,
  );
  for (const m of simRss) for (const e of m.errors ?? []) console.log(`  (${e})`);
  if (realRss !== null) console.log(`  knarr daemon RSS after ${(seconds + SETTLE_S).toFixed(0)} s idle: ${mb(realRss)} MB (target <= 80 MB)`);
  // The target is the fleet's total: an agent's pace slows as the fleet grows, so a smaller fleet must stay under it too.
  const ok = r.requests <= 50 && (realRss === null || realRss <= 80 * 1024 ** 2);
  console.log(
    `fleet-idle: ${r.requests.toFixed(1)} requests/s for ${agents} agents (target 50 in total, up to 1,000 agents), ` +
      `${r.proposals.toFixed(2)} writes/s, ${mb(growth)} MB/h; daemon RSS ${realRss === null ? '-' : `${mb(realRss)} MB`} (target 80) ${ok ? 'PASS' : 'FAIL'}`,
  );
} finally {
  await cleanUp();
}
process.exit(0);
