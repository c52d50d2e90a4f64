// Start-up cost of knarr against a bare `node -e 0`, measured interleaved in one run.
// A report, not a gate: it always exits 0 once it has measured; the last line says PASS/FAIL per target.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchEnv } from './lib/env.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/knarr');
const NODE = process.execPath;
const WARMUP = Number(process.env.KNARR_BENCH_WARMUP ?? 3);
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 15);
const TARGETS = { version: 1.3, list: 2.0 };

const baseEnv = benchEnv();

function run(argv, env = baseEnv) {
  return spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function check(what, r) {
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim()}`);
  return r;
}

function zfsAnswers() {
  const r = run(['zpool', 'list', '-H', '-o', 'name']);
  return !r.error && r.status === 0;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

let interrupted = false;
const onSignal = () => void (interrupted = true);
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
const yieldToSignals = () => new Promise((r) => setImmediate(r));

async function main() {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) {
    console.error('startup: dist/ is missing; build first (npm run bench does)');
    process.exitCode = 1;
    return;
  }
  const stateDir = mkdtempSync(join(tmpdir(), 'knarr-bench-'));
  const pool = `kbench${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
  const driver = zfsAnswers() ? 'zfs' : 'dir';
  const knarr = (...args) => [NODE, BIN, '--state-dir', stateDir, ...args];
  let created = false;
  try {
    const init =
      driver === 'zfs'
        ? knarr('pool', 'init', '--driver', 'zfs', '--loop-file', `${stateDir}/p.img`, '--size', '128M', '--name', pool)
        : knarr('pool', 'init', '--driver', 'dir', '--name', pool);
    created = true;
    check('knarr pool init', run(init));

    const listEnv = { ...baseEnv, KNARR_STATE_DIR: stateDir };
    // The config file of a production host, as the README shows it: read at every start.
    const configFile = join(stateDir, 'config.yaml');
    writeFileSync(
      configFile,
      `output: table\nstateDir: ${stateDir}\npool:\n  name: ${pool}\n  driver: ${driver}\netcdServer:\n  clientPort: 2379\n  peerPort: ` +
        `2380\ndaemon:\n  tags: [ssd, zone=eu]\n  ttl: 10\n`,
    );
    const cases = [
      { key: 'node', label: 'node -e 0', argv: [NODE, '-e', '0'] },
      { key: 'version', label: 'knarr --version', argv: [NODE, BIN, '--version'] },
      { key: 'list', label: `knarr --json pool list (1 ${driver} pool)`, argv: [NODE, BIN, '--json', 'pool', 'list'], env: listEnv },
      { key: 'config', label: '  the same with a config file', argv: [NODE, BIN, '--config', configFile, '--json', 'pool', 'list'], env: listEnv },
    ];
    const listed = JSON.parse(check('knarr --json pool list', run(cases[2].argv, listEnv)).stdout);
    if (listed.length !== 1 || !listed[0].online) throw new Error(`expected one online pool, got ${JSON.stringify(listed)}`);

    const times = Object.fromEntries(cases.map((c) => [c.key, []]));
    for (let round = 0; round < WARMUP + ROUNDS; round++) {
      // Rotate the order so no command always runs first (or right after another).
      for (let i = 0; i < cases.length; i++) {
        const c = cases[(round + i) % cases.length];
        const t0 = process.hrtime.bigint();
        const r = run(c.argv, c.env);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        check(c.label, r);
        if (round >= WARMUP) times[c.key].push(ms);
        await yieldToSignals();
        if (interrupted) throw new Error('interrupted');
      }
    }

    const ratio = (key) => median(times[key].map((t, i) => t / times.node[i]));
    console.log(`startup: ${ROUNDS} interleaved rounds after ${WARMUP} warm-up; node ${process.version}; median wall-clock`);
    for (const c of cases) {
      const med = median(times[c.key]);
      const target = TARGETS[c.key] === undefined ? '(reported)' : `(target <= ${TARGETS[c.key].toFixed(1)})`;
      const extra = c.key === 'node' ? '' : `  ratio ${ratio(c.key).toFixed(2)} ${target}`;
      console.log(
        `  ${c.label.padEnd(42)} ${med.toFixed(1).padStart(7)} ms  (min ${Math.min(...times[c.key]).toFixed(1)}, ` +
          `max ${Math.max(...times[c.key]).toFixed(1)})${extra}`,
      );
    }
    const verdict = (key) => `ratio ${ratio(key).toFixed(2)} (target ${TARGETS[key].toFixed(1)}) ${ratio(key) <= TARGETS[key] ? 'PASS' : 'FAIL'}`;
    console.log(`startup: version ${verdict('version')}; pool list ${verdict('list')}`);
  } finally {
    if (created) {
      const r = run(knarr('pool', 'destroy', pool, '--yes'));
      if (r.status !== 0 && driver === 'zfs' && run(['zpool', 'list', '-H', '-o', 'name', pool]).status === 0) {
        run(['zpool', 'destroy', '-f', pool]);
      }
    }
    rmSync(stateDir, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  console.error(`startup: ${e.message}`);
  process.exitCode = interrupted ? 130 : 1;
}
