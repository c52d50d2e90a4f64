// Jobs against the plain docker CLI, each pair in one run on a private dockerd:
//  - `knarr job run IMG true` vs `docker run --rm IMG true` (target ratio <= 1.2)
//  - 256 MiB through `knarr job run -i IMG cat` vs `docker run -i IMG cat` (throughput ratio >= 0.8)
// The scheduler's placements per second are in scheduler.mjs. A report: exits 0 once measured.
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDockerd } from './lib/dockerd.mjs';
import { benchEnv } from './lib/env.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/knarr');
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 5);
const MIB = Number(process.env.KNARR_BENCH_PIPE_MIB ?? 256);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

if (!existsSync(join(ROOT, 'dist/bundle/knarr.cjs'))) {
  console.error('jobs: build first (npm run bench does)');
  process.exit(1);
}
if (spawnSync('dockerd', ['--version']).status !== 0 || spawnSync('docker', ['--version']).status !== 0) {
  console.log('jobs: skipped (dockerd or docker missing)');
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'knarr-bench-jobs-'));
const dockerd = startDockerd(dir, process.env);
const env = benchEnv({ DOCKER_HOST: `unix://${dockerd.sock}`, KNARR_STATE_DIR: `${dir}/state` });
const sh = (argv, opts = {}) => spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', ...opts });
const timed = (argv, opts) => {
  const t = process.hrtime.bigint();
  const r = sh(argv, opts);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
};
function piped(argv, file) {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const p = spawn(argv[0], argv.slice(1), { env, stdio: ['pipe', 'pipe', 'inherit'] });
    let bytes = 0;
    p.stdout.on('data', (c) => (bytes += c.length));
    createReadStream(file).pipe(p.stdin);
    p.on('close', (code) =>
      code === 0 ? resolve({ ms: Number(process.hrtime.bigint() - t) / 1e6, bytes }) : reject(new Error(`${argv.join(' ')} exited ${code}`)),
    );
  });
}

try {
  for (let i = 0; sh(['docker', 'version']).status !== 0; i++) {
    if (i > 300) throw new Error('dockerd did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  mkdirSync(`${dir}/rootfs/bin`, { recursive: true });
  sh(['cp', '/bin/busybox', `${dir}/rootfs/bin/busybox`]);
  for (const a of ['sh', 'cat', 'true']) symlinkSync('busybox', `${dir}/rootfs/bin/${a}`);
  sh(['tar', '-C', `${dir}/rootfs`, '-cf', `${dir}/rootfs.tar`, '.']);
  sh(['docker', 'import', `${dir}/rootfs.tar`, 'knarr-bench/busybox:1']);
  const img = 'knarr-bench/busybox:1';

  const k = [];
  const d = [];
  timed([process.execPath, BIN, 'job', 'run', '--network', 'none', img, '--', 'true']);
  timed(['docker', 'run', '--rm', '--network', 'none', img, 'true']);
  for (let i = 0; i < ROUNDS; i++) {
    k.push(timed([process.execPath, BIN, 'job', 'run', '--network', 'none', img, '--', 'true']));
    d.push(timed(['docker', 'run', '--rm', '--network', 'none', img, 'true']));
  }
  const runRatio = median(k) / median(d);

  const file = `${dir}/input.bin`;
  sh(['dd', 'if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${MIB}`, 'status=none']);
  const kp = await piped([process.execPath, BIN, 'job', 'run', '-i', '--network', 'none', img, '--', 'cat'], file);
  const dp = await piped(['docker', 'run', '--rm', '-i', '--network', 'none', img, 'cat'], file);
  if (kp.bytes !== MIB * 1024 * 1024 || dp.bytes !== MIB * 1024 * 1024) throw new Error(`bytes lost: knarr ${kp.bytes}, docker ${dp.bytes}`);
  const kThroughput = MIB / (kp.ms / 1000);
  const dThroughput = MIB / (dp.ms / 1000);
  const pipeRatio = kThroughput / dThroughput;

  console.log(`jobs: ${ROUNDS} rounds, medians`);
  console.log(`  job run IMG true: knarr ${median(k).toFixed(0)} ms, docker run --rm ${median(d).toFixed(0)} ms  ratio ${runRatio.toFixed(2)} (target <= 1.2)`);
  console.log(
    `  ${MIB} MiB through cat: knarr ${kThroughput.toFixed(0)} MiB/s, docker ${dThroughput.toFixed(0)} MiB/s  ratio ${pipeRatio.toFixed(2)} (target >= 0.8)`,
  );
  console.log(
    `jobs: run ratio ${runRatio.toFixed(2)} (target 1.2) ${runRatio <= 1.2 ? 'PASS' : 'FAIL'}; pipe throughput ratio ${pipeRatio.toFixed(2)} ` +
      `(target 0.8) ${pipeRatio >= 0.8 ? 'PASS' : 'FAIL'}`,
  );
} finally {
  await dockerd.stop();
  for (const t of readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((x) => x?.startsWith(dir))
    .reverse())
    spawnSync('umount', ['-l', t]);
  rmSync(dir, { recursive: true, force: true });
}
