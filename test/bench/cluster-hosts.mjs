// A cluster over three hosts against plain LXC on one, in the same run:
//  - `knarr cluster create b --size 10 --spread` on three network-namespace hosts (each with a dir pool, the busybox
//    image and its agent, sharing one data directory), wall clock of the command until it returns with every node
//    running, against plain LXC's tools making the same 10 containers on one host: `lxc-create` of a container over the
//    base image, then per node `lxc-copy -s -B overlay` and `lxc-start` (target ratio <= 1.5);
//  - per round, where knarr's time went, from the operation records: the parent's wait for the home agent, its
//    placement and allocation until the parts go out, each host's part (queue wait and run), and the rest.
// KNARR_BENCH_ROUNDS (default 5) rounds after a warm-up, the two sides in turns; the verdict is the median of the rounds'
// ratios. KNARR_BENCH_CLUSTER_NODES (default 10) for a quicker run. A report: exits 0 once measured.
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeSubnet } from './lib/dockerd.mjs';
import { benchEnv } from './lib/env.mjs';
import { pairedRounds } from './lib/rounds.mjs';
import { startEtcd, sum } from './lib/etcd.mjs';
import { netnsHosts, withNetnsSysfs } from './lib/netns.mjs';
import { lxcCopyStart } from './lib/plain-lxc.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/knarr');
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 5);
const SIZE = Number(process.env.KNARR_BENCH_CLUSTER_NODES ?? 10);
const HOSTS = ['ha', 'hb', 'hc'];

if (!existsSync(join(ROOT, 'dist/bundle/knarr.cjs'))) {
  console.error('cluster-hosts: build first (npm run bench does)');
  process.exit(1);
}
if (process.getuid?.() !== 0) {
  console.log('cluster-hosts: skipped (network namespaces need root)');
  process.exit(0);
}
for (const tool of ['lxc-start', 'lxc-copy', 'etcd', 'busybox', 'ip', 'nsenter', 'unshare']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.log(`cluster-hosts: skipped (${tool} missing)`);
    process.exit(0);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'knarr-bench-cluster-hosts-'));
const share = `${dir}/share`;
mkdirSync(share);
const tokenFile = `${dir}/agent.token`;
writeFileSync(tokenFile, `bench-${randomInt(1e9)}\n`, { mode: 0o600 });
const routes = spawnSync('ip', ['-o', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout;
let octet;
do octet = randomInt(100, 200);
while (routes.includes(`10.${octet}.`));
const plainNet = freeSubnet();
const plainBridge = `kq${randomInt(36 ** 5)
  .toString(36)
  .padStart(5, '0')}`;
const plainPath = `${dir}/plain-lxc`;

let fabric = null;
let etcd = null;
const agents = [];

/** knarr on host h, run to its end; its stdout. */
const k = (env, h, ...argv) => {
  const [file, args] = h.argv(BIN, ['--state-dir', `${h.dir}/state`, ...argv]);
  const r = spawnSync(file, args, { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${h.name}: knarr ${argv.join(' ')} exited ${r.status}: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
};
const seconds = (fn) => {
  const t = process.hrtime.bigint();
  const out = fn();
  return [Number(process.hrtime.bigint() - t) / 1e9, out];
};
const at = (iso) => Date.parse(iso) / 1000;

async function cleanup() {
  for (const a of agents) a.kill('SIGKILL');
  if (fabric)
    for (const h of fabric.hosts) {
      // LXC's command sockets are abstract, so per network namespace: stop each host's containers from inside it.
      const [file, args] = h.argv('lxc-ls', ['-P', `${h.dir}/state/lxc`, '-1']);
      const names = spawnSync(file, args, { encoding: 'utf8' }).stdout?.split('\n').filter(Boolean) ?? [];
      for (const n of names) spawnSync(...h.argv('lxc-stop', ['-P', `${h.dir}/state/lxc`, '-n', n, '-k']));
    }
  const plain = spawnSync('lxc-ls', ['-P', plainPath, '-1'], { encoding: 'utf8' }).stdout?.split('\n').filter(Boolean) ?? [];
  for (const n of plain) spawnSync('lxc-stop', ['-P', plainPath, '-n', n, '-k']);
  spawnSync('ip', ['link', 'del', plainBridge]);
  fabric?.teardown();
  await etcd?.stop();
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    // Something still mounted must not hide why the benchmark stopped.
    console.error(`cluster-hosts: could not remove ${dir}: ${e.message}`);
  }
}

try {
  fabric = netnsHosts(dir, HOSTS);
  etcd = await startEtcd(dir, fabric.gateway);
  const env = benchEnv({
    KNARR_ETCD: etcd.url,
    KNARR_FLEET: 'bench',
    KNARR_CLUSTER_NETWORK: `10.${octet}.0.0/16`,
    KNARR_CLUSTER_BRIDGE: `${fabric.tag}c`,
    KNARR_USER: 'bench',
    KNARR_AGENT_TOKEN_FILE: tokenFile,
    DOCKER_HOST: `unix://${dir}/no-docker.sock`,
  });
  const [home] = fabric.hosts;
  for (const h of fabric.hosts) {
    k(env, h, '-q', 'pool', 'init', '--name', 'nodes', '--driver', 'dir');
    k(env, h, '-q', 'image', 'import', 'base', '--busybox');
    const daemon = ['--state-dir', `${h.dir}/state`, 'daemon', '--name', h.name, '--listen', `${h.ip}:7946`, '--share', share];
    const [file, args] = h.argv(...withNetnsSysfs(BIN, daemon));
    const log = openSync(`${h.dir}/agent.log`, 'a');
    agents.push(spawn(file, args, { env, stdio: ['ignore', log, log] }));
  }
  for (let i = 0; ; i++) {
    const up = JSON.parse(k(env, home, '--json', 'host', 'list')).filter((h) => h.up).length;
    if (up === HOSTS.length) break;
    if (i > 300) throw new Error(`only ${up} of ${HOSTS.length} agents came up`);
    await new Promise((r) => setTimeout(r, 100));
  }

  spawnSync('ip', ['link', 'add', plainBridge, 'type', 'bridge']);
  spawnSync('ip', ['addr', 'add', `${plainNet}.1/24`, 'dev', plainBridge]);
  spawnSync('ip', ['link', 'set', plainBridge, 'up']);
  writeFileSync(`${dir}/plain-hosts`, '127.0.0.1 localhost\n');
  mkdirSync(`${dir}/plain-share`);
  const tools = lxcCopyStart({
    lxcPath: plainPath,
    base: `${home.dir}/state/mnt/nodes/knarr-images/base/rootfs`,
    bridge: plainBridge,
    net: plainNet,
    hostsFile: `${dir}/plain-hosts`,
    share: `${dir}/plain-share`,
    conf: `${dir}/plain-base.conf`,
  });

  const knarr = [];
  const plain = [];
  const phases = [];
  const sides = {
    knarr: async (round) => {
      const before = await etcd.metrics();
      const [s, out] = seconds(() => k(env, home, '--json', 'cluster', 'create', `b${round}`, '--size', String(SIZE), '--spread'));
      const c = JSON.parse(k(env, home, '--json', 'cluster', 'show', `b${round}`));
      const notRunning = c.nodes.filter((n) => n.state !== 'RUNNING').map((n) => `${n.hostname}@${n.host} ${n.state}`);
      if (c.status !== 'running' || notRunning.length > 0) throw new Error(`cluster b${round} is ${c.status}: ${notRunning.join(', ')}`);
      const spread = new Set(c.nodes.map((n) => n.host)).size;
      if (spread !== HOSTS.length) throw new Error(`cluster b${round}'s nodes are on ${spread} hosts, not ${HOSTS.length}`);
      // Each raft proposal is a write etcd fsyncs before it answers: the create's writes, and its time in fsync.
      const after = await etcd.metrics();
      const d = (name) => sum(after, name) - sum(before, name);
      const fsyncs = `etcd ${d('etcd_disk_wal_fsync_duration_seconds_count')} fsyncs, ${d('etcd_disk_wal_fsync_duration_seconds_sum').toFixed(2)} s in them`;
      phases.push(`${phasesOf(env, home, JSON.parse(out).id, s)}; ${fsyncs}`);
      k(env, home, '-q', 'cluster', 'delete', `b${round}`);
      knarr.push(s);
    },
    plain: (round) => {
      const [s] = seconds(() => tools.up(SIZE, round));
      tools.down(SIZE, round);
      plain.push(s);
    },
  };
  const { kn, pl, ratio } = await pairedRounds(sides, ROUNDS, knarr, plain, [phases]);
  for (const [i, p] of phases.entries()) console.log(`  round ${i}: ${p}`);
  console.log(
    `cluster create+start, ${SIZE} nodes over ${HOSTS.length} hosts: knarr ${kn.toFixed(2)} s, plain lxc-create/lxc-copy/lxc-start on one host ` +
      `${pl.toFixed(2)} s (medians, ratio ${(kn / pl).toFixed(2)}); median of the rounds' ratios ${ratio.toFixed(2)} (target <= ` +
      `1.5) ${ratio <= 1.5 ? 'PASS' : 'FAIL'}`,
  );
} catch (e) {
  for (const h of fabric?.hosts ?? []) {
    const log = `${h.dir}/agent.log`;
    if (existsSync(log)) console.error(`--- agent ${h.name}:\n${readFileSync(log, 'utf8').split('\n').slice(-30).join('\n')}`);
  }
  throw e;
} finally {
  await cleanup();
}

/** Where a create's seconds went, from its operation and its parts' records. */
function phasesOf(env, h, id, wall) {
  const op = JSON.parse(k(env, h, '--json', 'op', 'show', id));
  const parts = op.children.map((c) => JSON.parse(k(env, h, '--json', 'op', 'show', c)));
  const start = at(op.createdAt);
  const firstPart = Math.min(...parts.map((p) => at(p.createdAt)));
  const f = (x) => x.toFixed(2);
  const each = parts.map((p) => `${p.host} wait ${f(at(p.startedAt) - at(p.createdAt))} run ${f(at(p.finishedAt) - at(p.startedAt))}`);
  return (
    `wall ${f(wall)}: agent pickup ${f(at(op.startedAt) - start)}, placement+allocation ${f(firstPart - at(op.startedAt))}, ` +
    `parts [${each.join('; ')}], home part+finish ${f(at(op.finishedAt) - firstPart)}, command outside the op ${f(wall - (at(op.finishedAt) - start))}`
  );
}
