// Dot speed, each pair measured in one run against the plain tool or a small dot:
//  - commit + clone of a 1 GiB dot against a 1 MiB dot, on zfs and on btrfs (constant time: target <= 1.5)
//  - clone of the 1 GiB dot against `cp -a` of the same data (reported)
//  - push of a 256 MiB commit to a file remote against `zfs send > file` of the same snapshot (target <= 1.2),
//    median of the per-round ratios; `zfs send > file && sync file` is reported beside it
// A report, not a gate: exits 0 once measured; the last line says PASS/FAIL per target.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchEnv } from './lib/env.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/knarr');
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 3);
const BIG = Number(process.env.KNARR_BENCH_DOT_MIB ?? 1024);
const PUSH = Number(process.env.KNARR_BENCH_PUSH_MIB ?? 256);
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

const lines = [];
const verdicts = [];

async function onDriver(driver) {
  const dir = mkdtempSync(join(tmpdir(), `knarr-bench-dot-${driver}-`));
  const config = `${dir}/config.yaml`;
  writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
  const pool = `kbd${process.pid.toString(36)}${driver[0]}`;
  const k = (...a) => [process.execPath, BIN, '-q', '--state-dir', `${dir}/state`, '--config', config, ...a];
  const dotPath = (d) => `${dir}/state/mnt/${pool}/knarr-dots/${d}/master/__default__`;
  try {
    sh(k('pool', 'init', '--name', pool, '--driver', driver, '--loop-file', `${dir}/pool.img`, '--size', `${BIG * 2 + PUSH + 1024}M`));
    sh(k('etcd', 'up'));
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

    if (driver === 'zfs') {
      sh(k('dot', 'init', 'pushme'));
      fill(dotPath('pushme'), PUSH);
      const commit = JSON.parse(sh(k('--json', 'dot', 'commit', 'pushme', '-m', 'to push')).stdout);
      const snap = `${pool}/knarr-dots/pushme/master@${commit.id}`;
      const remote = `${dir}/remote`;
      const plain = `${dir}/plain.zfs`;
      // Both sides read the snapshot warm: the first reader would otherwise pay for the other.
      sh(['sh', '-c', 'zfs send "$1" > /dev/null', 'sh', snap]);
      let stream;
      const sides = {
        push: () => {
          const ms = timed(k('dot', 'push', 'pushme', `file://${remote}`)).ms;
          stream = JSON.parse(readFileSync(`${remote}/pushme/manifest.json`, 'utf8')).commits[commit.id];
          return ms;
        },
        send: () => timed(['sh', '-c', 'zfs send "$1" > "$2"', 'sh', snap, plain]).ms,
        // Reported only: knarr makes a stream durable before its manifest names it; this is the plain tool doing the same.
        sendSync: () => timed(['sh', '-c', 'zfs send "$1" > "$2" && sync "$2"', 'sh', snap, plain]).ms,
      };
      const t = { push: [], send: [], sendSync: [] };
      for (let i = 0; i < ROUNDS; i++) {
        // Each side in turn goes first, writes a new file, and starts with no dirty pages left by the other.
        for (const side of i % 2 ? ['send', 'sendSync', 'push'] : ['push', 'sendSync', 'send']) {
          rmSync(remote, { recursive: true, force: true });
          mkdirSync(remote);
          rmSync(plain, { force: true });
          // syncfs of the files' own file system: a global sync would also walk every zfs-fuse mount on the host.
          sh(['sync', '-f', dir]);
          t[side].push(sides[side]());
        }
      }
      const perRound = (a, b) => median(t[a].map((x, i) => x / t[b][i]));
      const ratio2 = perRound('push', 'send');
      lines.push(
        `  zfs: push ${PUSH} MiB ${median(t.push).toFixed(0)} ms vs zfs send > file ${median(t.send).toFixed(0)} ms  ratio ${ratio2.toFixed(2)} ` +
          `(target <= 1.2; stream ${stream.bytes} bytes)`,
      );
      lines.push(
        `  zfs: push vs zfs send > file && sync file ${median(t.sendSync).toFixed(0)} ms  ratio ${perRound('push', 'sendSync').toFixed(2)} (reported)`,
      );
      verdicts.push(`zfs push ratio ${ratio2.toFixed(2)} (target 1.2) ${ratio2 <= 1.2 ? 'PASS' : 'FAIL'}`);
    }
  } finally {
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

const zfs = spawnSync('zpool', ['list', '-H'], { env }).status === 0;
const btrfs = existsSync('/dev/loop-control') && spawnSync('mkfs.btrfs', ['--version'], { env }).status === 0;
if (!existsSync(join(ROOT, 'dist/bundle/knarr.cjs'))) {
  console.error('dot: build first (npm run bench does)');
  process.exit(1);
}
if (zfs) await onDriver('zfs');
else lines.push('  zfs: skipped (zpool does not answer)');
if (btrfs) await onDriver('btrfs');
else lines.push('  btrfs: skipped (no mkfs.btrfs or loop devices)');
console.log(`dot: ${ROUNDS} rounds, medians`);
for (const l of lines) console.log(l);
console.log(`dot: ${verdicts.join('; ')}`);
