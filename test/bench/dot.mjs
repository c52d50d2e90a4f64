// Dot speed, each pair measured in one run against the plain tool or a small dot:
//  - commit + clone of a 1 GiB dot against a 1 MiB dot, on zfs and on btrfs (constant time: target <= 1.5)
//  - clone of the 1 GiB dot against `cp -a` of the same data (reported)
//  - push of a 1 GiB commit to a file remote against `zfs send > file && sync -f file` of the same snapshot, a
//    baseline as durable as the push (target <= 1.2), median of the per-round ratios; `zfs send > file` reported beside it
//  - push of the same commit to a hub served over https by an agent on another network-namespace host against
//    `zfs send | curl -T - https://...` into a plain receiver on that host that writes the body to a file and fsyncs it
//    (target <= 1.2)
//  - knarr's fixed cost per push (file and hub): a push of a tiny dot minus the plain tool on the same tiny snapshot
// KNARR_BENCH_DOT_MIB, KNARR_BENCH_PUSH_MIB and KNARR_BENCH_ROUNDS change the sizes and rounds; KNARR_BENCH_DOT_ONLY
// (a comma list of clone, file, hub) runs only those parts. A report, not a gate: exits 0 once measured; the last line
// says PASS/FAIL per target.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchEnv } from './lib/env.mjs';
import { startEtcd } from './lib/etcd.mjs';
import { netnsHosts } from './lib/netns.mjs';
import { pairedRounds } from './lib/rounds.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/knarr');
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 3);
const BIG = Number(process.env.KNARR_BENCH_DOT_MIB ?? 1024);
const PUSH = Number(process.env.KNARR_BENCH_PUSH_MIB ?? 1024);
const ONLY = (process.env.KNARR_BENCH_DOT_ONLY ?? 'clone,file,hub').split(',');
const env = benchEnv();

function sh(argv, opts = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  if (r.error) throw new Error(`${argv.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${(r.stderr || '').trim()}`);
  return r;
}
function timed(argv, opts) {
  const t = process.hrtime.bigint();
  const r = sh(argv, opts);
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, r };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const freePort = () =>
  new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
function fill(dir, mib) {
  mkdirSync(dir, { recursive: true });
  // 64 MiB files of random bytes: nothing compresses or dedups them away.
  for (let i = 0, left = mib; left > 0; i++, left -= 64)
    sh(['dd', 'if=/dev/urandom', `of=${dir}/f${i}`, 'bs=1M', `count=${Math.min(64, left)}`, 'status=none']);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const lines = [];
const verdicts = [];

async function onDriver(driver) {
  const dir = mkdtempSync(join(tmpdir(), `knarr-bench-dot-${driver}-`));
  const config = `${dir}/config.yaml`;
  writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
  const pool = `kbd${process.pid.toString(36)}${driver[0]}`;
  const k = (...a) => [process.execPath, BIN, '-q', '--state-dir', `${dir}/state`, '--config', config, ...a];
  const dotPath = (d) => `${dir}/state/mnt/${pool}/knarr-dots/${d}/master/__default__`;
  const pushes = driver === 'zfs' && (ONLY.includes('file') || ONLY.includes('hub'));
  const cleanups = [];
  try {
    sh(k('pool', 'init', '--name', pool, '--driver', driver, '--loop-file', `${dir}/pool.img`, '--size', `${BIG * 2 + PUSH + 1024}M`));
    sh(k('etcd', 'up'));
    if (ONLY.includes('clone')) clones(driver, dir, pool, k, dotPath);
    if (pushes) {
      const big = pushable(k, dotPath, pool, 'pushme', PUSH);
      const tiny = pushable(k, dotPath, pool, 'tiny', 0);
      if (ONLY.includes('file')) filePushes(dir, k, big, tiny);
      if (ONLY.includes('hub')) await hubPushes(dir, k, big, tiny, cleanups);
    }
  } finally {
    for (const c of cleanups.reverse()) await c();
    spawnSync(process.execPath, [BIN, '-q', '--state-dir', `${dir}/state`, '--config', config, 'etcd', 'down'], { env });
    spawnSync(process.execPath, [BIN, '-q', '--state-dir', `${dir}/state`, '--config', config, 'pool', 'destroy', pool, '--yes', '--force'], { env });
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      // A pool that would not go must not hide why the benchmark stopped.
      console.error(`dot: could not remove ${dir}: ${e.message}`);
    }
  }
}

/** Commit + clone of a big dot against a small one, and a clone against cp -a. */
function clones(driver, dir, pool, k, dotPath) {
  sh(k('dot', 'init', 'big'));
  sh(k('dot', 'init', 'small'));
  fill(dotPath('big'), BIG);
  fill(dotPath('small'), 1);
  const big = [];
  const small = [];
  for (let i = 0; i < ROUNDS; i++) {
    for (const [name, out] of [
      ['small', small],
      ['big', big],
    ]) {
      writeFileSync(`${dotPath(name)}/round`, String(i));
      const c = timed(k('dot', 'commit', name, '-m', `round ${i}`));
      const cl = timed(k('dot', 'clone', name, `${name}-c${i}`));
      out.push(c.ms + cl.ms);
    }
  }
  const ratio = median(big) / median(small);
  lines.push(
    `  ${driver}: commit+clone ${BIG} MiB ${median(big).toFixed(0)} ms, 1 MiB ${median(small).toFixed(0)} ms  ratio ${ratio.toFixed(2)} (target <= 1.5)`,
  );
  verdicts.push(`${driver} commit+clone ratio ${ratio.toFixed(2)} (target 1.5) ${ratio <= 1.5 ? 'PASS' : 'FAIL'}`);

  const cp = timed(['cp', '-a', dotPath('big'), `${dir}/state/mnt/${pool}/cp-copy`]);
  const clone = timed(k('dot', 'clone', 'big', 'big-vs-cp'));
  lines.push(`  ${driver}: clone ${clone.ms.toFixed(0)} ms vs cp -a ${cp.ms.toFixed(0)} ms of ${BIG} MiB  ratio ${(clone.ms / cp.ms).toFixed(3)} (reported)`);
  rmSync(`${dir}/state/mnt/${pool}/cp-copy`, { recursive: true, force: true });
}

/** A dot of mib MiB of random data (a 4 KiB file when 0), committed once: its name, commit and snapshot. */
function pushable(k, dotPath, pool, name, mib) {
  sh(k('dot', 'init', name));
  if (mib > 0) fill(dotPath(name), mib);
  else sh(['dd', 'if=/dev/urandom', `of=${dotPath(name)}/f0`, 'bs=4k', 'count=1', 'status=none']);
  const commit = JSON.parse(sh(k('--json', 'dot', 'commit', name, '-m', 'to push')).stdout);
  const snap = `${pool}/knarr-dots/${name}/master@${commit.id}`;
  // Every side reads the snapshot warm: the first reader would otherwise pay for the others.
  sh(['sh', '-c', 'zfs send "$1" > /dev/null', 'sh', snap]);
  return { name, id: commit.id, snap, mib };
}

/** The file:// push against the durable plain tool (target) and the bare one (reported); then the fixed cost. */
function filePushes(dir, k, big, tiny) {
  const remote = `${dir}/remote`;
  const plain = `${dir}/plain.zfs`;
  let stream;
  const sidesOf = (d) => ({
    push: () => {
      const ms = timed(k('dot', 'push', d.name, `file://${remote}`)).ms;
      stream = JSON.parse(readFileSync(`${remote}/${d.name}/manifest.json`, 'utf8')).commits[d.id];
      return ms;
    },
    sendSync: () => timed(['sh', '-c', 'zfs send "$1" > "$2" && sync -f "$2"', 'sh', d.snap, plain]).ms,
    // Reported only: the plain tool leaving its data in the page cache, which knarr never does before naming a stream.
    send: () => timed(['sh', '-c', 'zfs send "$1" > "$2"', 'sh', d.snap, plain]).ms,
  });
  const run = (d, order) => {
    const sides = sidesOf(d);
    const t = Object.fromEntries(order.map((s) => [s, []]));
    for (let i = 0; i < ROUNDS; i++) {
      // Each side in turn goes first, writes a new file, and starts with no dirty pages left by the other.
      for (const side of i % 2 ? [...order].reverse() : order) {
        rmSync(remote, { recursive: true, force: true });
        mkdirSync(remote);
        rmSync(plain, { force: true });
        // syncfs of the files' own file system: a global sync would also walk every zfs-fuse mount on the host.
        sh(['sync', '-f', dir]);
        t[side].push(sides[side]());
      }
    }
    return t;
  };
  const t = run(big, ['push', 'sendSync', 'send']);
  const perRound = (a, b) => median(t[a].map((x, i) => x / t[b][i]));
  const ratio = perRound('push', 'sendSync');
  lines.push(
    `  zfs: push ${PUSH} MiB to file:// ${median(t.push).toFixed(0)} ms vs zfs send > file && sync -f file ${median(t.sendSync).toFixed(0)} ms  ` +
      `ratio ${ratio.toFixed(2)} (target <= 1.2; stream ${stream.bytes} bytes)`,
  );
  lines.push(`  zfs: push to file:// vs zfs send > file ${median(t.send).toFixed(0)} ms  ratio ${perRound('push', 'send').toFixed(2)} (reported)`);
  verdicts.push(`zfs file push ratio ${ratio.toFixed(2)} (target 1.2) ${ratio <= 1.2 ? 'PASS' : 'FAIL'}`);
  const f = run(tiny, ['push', 'sendSync']);
  lines.push(
    `  zfs: fixed cost of a push to file://: ${(median(f.push) - median(f.sendSync)).toFixed(0)} ms (a 4 KiB dot: push ${median(f.push).toFixed(0)} ms, ` +
      `zfs send > file && sync -f file ${median(f.sendSync).toFixed(0)} ms; stream ${stream.bytes} bytes)`,
  );
  // What the fixed cost is made of, reported: Node's start, knarr's, and a command that reads the dot from the store.
  const parts = { node: [], version: [], show: [] };
  for (let i = 0; i < ROUNDS; i++) {
    parts.node.push(timed([process.execPath, '-e', '0']).ms);
    parts.version.push(timed([process.execPath, BIN, '--version']).ms);
    parts.show.push(timed(k('--json', 'dot', 'show', tiny.name)).ms);
  }
  lines.push(
    `    of which: node -e 0 ${median(parts.node).toFixed(0)} ms, knarr --version ${median(parts.version).toFixed(0)} ms, ` +
      `knarr dot show (start + the store) ${median(parts.show).toFixed(0)} ms (reported)`,
  );
}

/** A CA and a server certificate for ip, made with openssl in dir: what the hub and the plain receiver both serve. */
function certificates(dir, ip) {
  const o = (...args) => sh(['openssl', ...args], { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  o('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=knarr bench ca');
  o('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${ip}`);
  writeFileSync(`${dir}/server.ext`, `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth\n`);
  o('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
  return { ca: `${dir}/ca.pem`, cert: `${dir}/server.pem`, key: `${dir}/server.key` };
}

// The plain side's receiver: each request's body goes to the file named on the command line, fsynced before it answers.
const RECEIVER = `
const { createServer } = require('node:https');
const { createWriteStream, readFileSync } = require('node:fs');
const { pipeline } = require('node:stream/promises');
const [cert, key, host, port, out] = process.argv.slice(1);
createServer({ cert: readFileSync(cert), key: readFileSync(key) }, async (req, res) => {
  // flush: fsync before the file is closed, and the pipeline ends only after that.
  const ws = createWriteStream(out, { flush: true });
  await pipeline(req, ws);
  res.end(JSON.stringify({ bytes: ws.bytesWritten }));
}).listen(Number(port), host, () => console.log('ready'));
`;

/** Waits until url answers anything over TLS (its CA given), or the process died. */
async function answering(url, ca, proc, log) {
  for (let i = 0; ; i++) {
    if (spawnSync('curl', ['-sS', '-o', '/dev/null', '--max-time', '2', '--cacert', ca, url]).status === 0) return;
    if (proc.exitCode !== null || i > 300) throw new Error(`${url} did not answer: ${existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : ''}`);
    await sleep(100);
  }
}

/** The hub push against zfs send | curl into a plain receiver on the same far host, and the fixed cost. */
async function hubPushes(dir, k, big, tiny, cleanups) {
  const fabric = netnsHosts(`${dir}/hosts`, ['hub']);
  cleanups.push(() => fabric.teardown());
  const [host] = fabric.hosts;
  const etcd = await startEtcd(dir, fabric.gateway);
  cleanups.push(() => etcd.stop());
  const tls = certificates(dir, host.ip);
  const hubDir = `${host.dir}/hub`;
  const received = `${host.dir}/received.zfs`;
  const agentEnv = benchEnv({ KNARR_ETCD: etcd.url, KNARR_FLEET: 'bench', DOCKER_HOST: `unix://${dir}/no-docker.sock` });
  const daemon = [
    ...['--state-dir', `${host.dir}/state`, 'daemon', '--name', host.name, '--listen', `${host.ip}:7946`],
    ...['--tls-cert', tls.cert, '--tls-key', tls.key, '--hub', hubDir],
  ];
  const agentLog = `${host.dir}/agent.log`;
  const agent = spawn(...host.argv(BIN, daemon), { env: agentEnv, stdio: ['ignore', openSync(agentLog, 'a'), openSync(agentLog, 'a')] });
  cleanups.push(() => new Promise((r) => (agent.exitCode !== null ? r() : agent.once('exit', r).kill('SIGKILL'))));
  const receiverLog = `${host.dir}/receiver.log`;
  const receiver = spawn(...host.argv(process.execPath, ['-e', RECEIVER, tls.cert, tls.key, host.ip, '8443', received]), {
    env,
    stdio: ['ignore', openSync(receiverLog, 'a'), openSync(receiverLog, 'a')],
  });
  cleanups.push(() => new Promise((r) => (receiver.exitCode !== null ? r() : receiver.once('exit', r).kill('SIGKILL'))));
  await answering(`https://${host.ip}:7946/hub/v1/dots`, tls.ca, agent, agentLog);
  await answering(`https://${host.ip}:8443/`, tls.ca, receiver, receiverLog);

  const token = JSON.parse(sh(k('--json', 'hub', 'token', 'create', 'bench', '--write', '--hub', hubDir)).stdout).token;
  const tokenFile = `${dir}/hub.token`;
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  sh(k('dot', 'remote', 'add', 'hub', `https://${host.ip}:7946/bench`, '--token-file', tokenFile, '--ca-file', tls.ca));
  const curl = `zfs send "$1" | curl -sS --fail --cacert "$2" -T - "$3"`;

  const pair = async (d) => {
    const knarr = [];
    const plain = [];
    let bytes;
    const fresh = () => {
      rmSync(`${hubDir}/dots/bench/${d.name}`, { recursive: true, force: true });
      rmSync(received, { force: true });
      sh(['sync', '-f', host.dir]);
    };
    const sides = {
      knarr: (round) => {
        fresh();
        knarr.push(timed(k('dot', 'push', d.name, 'hub')).ms / 1000);
        const entry = JSON.parse(readFileSync(`${hubDir}/dots/bench/${d.name}/manifest.json`, 'utf8')).commits[d.id];
        if (!entry) throw new Error(`round ${round}: the hub's manifest of ${d.name} does not name ${d.id}`);
        bytes = entry.bytes;
      },
      plain: (round) => {
        fresh();
        const { ms, r } = timed(['sh', '-c', curl, 'sh', d.snap, tls.ca, `https://${host.ip}:8443/${d.name}`]);
        plain.push(ms / 1000);
        const got = JSON.parse(r.stdout).bytes;
        if (bytes !== undefined && got !== bytes) throw new Error(`round ${round}: the receiver got ${got} bytes, the hub ${bytes}`);
      },
    };
    console.log(`dot: hub push of ${d.mib ? `${d.mib} MiB` : '4 KiB'}`);
    const r = await pairedRounds(sides, ROUNDS, knarr, plain);
    fresh();
    return { ...r, bytes };
  };
  const b = await pair(big);
  lines.push(
    `  zfs: push ${PUSH} MiB to a hub on another host (https) ${(b.kn * 1000).toFixed(0)} ms vs zfs send | curl -T - to a receiver that fsyncs ` +
      `${(b.pl * 1000).toFixed(0)} ms  ratio ${b.ratio.toFixed(2)} (target <= 1.2; stream ${b.bytes} bytes)`,
  );
  verdicts.push(`zfs hub push ratio ${b.ratio.toFixed(2)} (target 1.2) ${b.ratio <= 1.2 ? 'PASS' : 'FAIL'}`);
  // Where the plain side's time goes, reported: the source alone, and the source with one sha256 over the stream.
  const source = { send: [], sha: [] };
  for (let i = 0; i < ROUNDS; i++) {
    source.send.push(timed(['sh', '-c', 'zfs send "$1" > /dev/null', 'sh', big.snap]).ms);
    source.sha.push(timed(['sh', '-c', 'zfs send "$1" | sha256sum > /dev/null', 'sh', big.snap]).ms);
  }
  lines.push(
    `    zfs send > /dev/null ${median(source.send).toFixed(0)} ms, zfs send | sha256sum ${median(source.sha).toFixed(0)} ms (reported: the ` +
      `source alone, and with one sha256)`,
  );
  const t = await pair(tiny);
  lines.push(
    `  zfs: fixed cost of a push to the hub: ${((t.kn - t.pl) * 1000).toFixed(0)} ms (a 4 KiB dot: push ${(t.kn * 1000).toFixed(0)} ms, ` +
      `zfs send | curl ${(t.pl * 1000).toFixed(0)} ms)`,
  );
}

const zfs = spawnSync('zpool', ['list', '-H'], { env }).status === 0;
const btrfs = existsSync('/dev/loop-control') && spawnSync('mkfs.btrfs', ['--version'], { env }).status === 0;
const netns =
  process.getuid?.() === 0 && ['ip', 'nsenter', 'unshare', 'etcd', 'curl', 'openssl'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
if (!existsSync(join(ROOT, 'dist/bundle/knarr.cjs'))) {
  console.error('dot: build first (npm run bench does)');
  process.exit(1);
}
if (ONLY.includes('hub') && !netns) {
  lines.push('  hub: skipped (needs root, iproute2, util-linux, etcd, curl and openssl)');
  ONLY.splice(ONLY.indexOf('hub'), 1);
}
if (zfs) await onDriver('zfs');
else lines.push('  zfs: skipped (zpool does not answer)');
if (!ONLY.includes('clone')) lines.push('  btrfs: not asked for (KNARR_BENCH_DOT_ONLY)');
else if (btrfs) await onDriver('btrfs');
else lines.push('  btrfs: skipped (no mkfs.btrfs or loop devices)');
console.log(`dot: ${ROUNDS} rounds, medians`);
for (const l of lines) console.log(l);
console.log(`dot: ${verdicts.join('; ')}`);
