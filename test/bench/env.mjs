// An environment against the plain tools, on one host (a private dockerd, etcd and one `knarr daemon`), in the same run:
//  - `knarr env create bnR -f env.yaml` of web x3 + the built-in balancer (members {balancer: 1, web: 3}; the web role is a
//    busybox httpd serving its hostname on `ports: ["0:80"]`, `port: 80`, requiring a balancer from its 2nd member),
//    wall clock of the command until it returns with every member running behind the environment's service,
//  - against an operator's script with the plain docker CLI doing the same: `docker run -d` of the 3 webs (`-p 0:80`) and
//    of a 4th container, the balancer (busybox `nc -ll -e` running a forwarder that takes the next backend of a file per
//    connection, `-p 0:8080`), then `docker port` of each web and of the balancer, and the backends file written by hand
//    (target ratio <= 1.5);
//  - per round, where knarr's time went, from the operation records and the environment's history.
// Both sides are checked after each timed run, untimed: the service answers with every web's hostname, so neither can pass
// vacuously. KNARR_BENCH_ROUNDS (default 5) rounds after a warm-up, the two sides in turns; the verdict is the median of
// the rounds' ratios. KNARR_BENCH_ENV_WEBS (default 3) changes the webs. A report: exits 0 once measured.
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDockerd } from './lib/dockerd.mjs';
import { benchEnv } from './lib/env.mjs';
import { median, pairedRounds } from './lib/rounds.mjs';
import { freePort, startEtcd, sum } from './lib/etcd.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/knarr');
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 5);
const WEBS = Number(process.env.KNARR_BENCH_ENV_WEBS ?? 3);
const IMAGE = 'knarr-bench/busybox:1';
const HOST = 'bn-host';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (!existsSync(join(ROOT, 'dist/bundle/knarr.cjs'))) {
  console.error('env: build first (npm run bench does)');
  process.exit(1);
}
if (process.getuid?.() !== 0) {
  console.log('env: skipped (a private dockerd needs root)');
  process.exit(0);
}
for (const tool of ['dockerd', 'docker', 'etcd', 'busybox', 'ip']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.log(`env: skipped (${tool} missing)`);
    process.exit(0);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'knarr-envbench-'));
let dockerd = null;
let etcd = null;
let agent = null;
let env = null;

const sh = (argv, opts = {}) => spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
const must = (argv) => {
  const r = sh(argv);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout;
};
const k = (...argv) => must([process.execPath, BIN, ...argv]);
const docker = (...argv) => must(['docker', ...argv]);
const at = (iso) => Date.parse(iso);

/** Each answer of the HTTP service at addr over n requests (one connection each, as a client through a balancer makes). */
async function answers(addr, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(`http://${addr}/`, { signal: AbortSignal.timeout(5000), headers: { connection: 'close' } });
    out.push((await res.text()).trim());
  }
  return out;
}

/** The service at addr answers with exactly the hostnames of the containers named (each seen), within a few seconds. */
async function check(what, addr, containers) {
  const want = containers.map((c) => docker('inspect', '-f', '{{.Config.Hostname}}', c).trim()).sort();
  let seen = [];
  let error = '';
  for (let i = 0; i < 50; i++) {
    try {
      seen = [...new Set(await answers(addr, 3 * containers.length))].sort();
      if (JSON.stringify(seen) === JSON.stringify(want)) return;
      error = '';
    } catch (e) {
      error = e.cause?.message ?? e.message;
    }
    await sleep(100);
  }
  throw new Error(`${what}: the service at ${addr} answered ${JSON.stringify(seen)}${error ? ` (${error})` : ''}, not every web ${JSON.stringify(want)}`);
}

async function cleanup() {
  if (agent && agent.exitCode === null && agent.signalCode === null) {
    agent.kill('SIGKILL');
    await new Promise((r) => agent.once('exit', r));
  }
  if (dockerd) {
    // httpd and nc ignore SIGTERM as PID 1: dockerd would wait 10 s for each at its stop.
    const ids = sh(['docker', 'ps', '-aq']).stdout?.split('\n').filter(Boolean) ?? [];
    if (ids.length) sh(['docker', 'rm', '-f', ...ids]);
    await dockerd.stop();
  }
  await etcd?.stop();
  for (const t of readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((x) => x?.startsWith(dir))
    .reverse())
    spawnSync('umount', ['-l', t]);
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    // Something still mounted must not hide why the benchmark stopped.
    console.error(`env: could not remove ${dir}: ${e.message}`);
  }
}

try {
  dockerd = startDockerd(dir, benchEnv());
  etcd = await startEtcd(dir);
  const tokenFile = `${dir}/agent.token`;
  writeFileSync(tokenFile, `bench-${randomInt(1e9)}-0123456789abcdef\n`, { mode: 0o600 });
  env = benchEnv({
    DOCKER_HOST: `unix://${dockerd.sock}`,
    KNARR_ETCD: etcd.url,
    KNARR_STATE_DIR: `${dir}/state`,
    KNARR_AGENT_TOKEN_FILE: tokenFile,
  });
  for (let i = 0; sh(['docker', 'version']).status !== 0; i++) {
    if (i > 300) throw new Error('dockerd did not start');
    await sleep(100);
  }
  mkdirSync(`${dir}/rootfs/bin`, { recursive: true });
  must(['cp', '/bin/busybox', `${dir}/rootfs/bin/busybox`]);
  for (const a of ['sh', 'cat', 'mkdir', 'hostname', 'httpd', 'nc']) symlinkSync('busybox', `${dir}/rootfs/bin/${a}`);
  must(['tar', '-C', `${dir}/rootfs`, '-cf', `${dir}/rootfs.tar`, '.']);
  docker('import', `${dir}/rootfs.tar`, IMAGE);

  const listen = `127.0.0.1:${await freePort()}`;
  const log = openSync(`${dir}/agent.log`, 'a');
  agent = spawn(process.execPath, [BIN, 'daemon', '--name', HOST, '--listen', listen, '--token-file', tokenFile], { env, stdio: ['ignore', log, log] });
  for (let i = 0; ; i++) {
    const r = sh([process.execPath, BIN, '--json', 'host', 'show', HOST]);
    if (r.status === 0 && JSON.parse(r.stdout).up && JSON.parse(r.stdout).join === 'ok') break;
    if (i > 600 || agent.exitCode !== null) throw new Error(`the agent did not come up: ${r.stderr.trim()}`);
    await sleep(100);
  }

  // The environment: the web role as the issue gives it; the balancer is knarr's built-in role.
  const web = 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www';
  writeFileSync(
    `${dir}/web.yaml`,
    [
      'name: web',
      'priority: 20',
      'port: 80',
      'requires: [{role: balancer, from: 2}]',
      'job:',
      `  image: ${IMAGE}`,
      `  command: [sh, -c, '${web}']`,
      '  ports: ["0:80"]',
      '',
    ].join('\n'),
  );
  writeFileSync(`${dir}/env.yaml`, `roles: [web.yaml]\nmembers: {balancer: 1, web: ${WEBS}}\n`);

  // The plain balancer: per connection, the next backend of /lb/backends (HOST:PORT words) in turn, forwarded by nc.
  mkdirSync(`${dir}/lb`);
  writeFileSync(
    `${dir}/lb/forward`,
    [
      '#!/bin/sh',
      'set -- $(cat /lb/backends)',
      '[ $# -gt 0 ] || exit 1',
      'n=$(cat /lb/next 2>/dev/null || echo 0)',
      'echo $(( (n + 1) % $# )) > /lb/next',
      'shift $(( n % $# ))',
      'exec nc "${1%:*}" "${1#*:}"',
      '',
    ].join('\n'),
  );
  chmodSync(`${dir}/lb/forward`, 0o755);
  // The webs' published ports are on the host: the balancer's container reaches them at its bridge's gateway.
  const gateway = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(must(['ip', '-4', 'addr', 'show', dockerd.bridge]))?.[1];
  if (!gateway) throw new Error(`no address on ${dockerd.bridge}`);

  const knarr = [];
  const plain = [];
  const websOnly = [];
  const phases = [];
  const webNames = (e) => Array.from({ length: WEBS }, (_, i) => `knarr-${e}-web-${i + 1}`);
  const sides = {
    knarr: async (round) => {
      const name = `bn${round}`;
      // Node's and knarr's bare start on this machine now, to read the command's time before its operation is queued against.
      const v0 = Date.now();
      k('--version');
      const bare = Date.now() - v0;
      const before = await etcd.metrics();
      const t0 = Date.now();
      const out = k('--json', 'env', 'create', name, '-f', `${dir}/env.yaml`);
      const t1 = Date.now();
      const after = await etcd.metrics();
      const shown = JSON.parse(k('--json', 'env', 'show', name));
      const notRunning = shown.members.filter((m) => m.state !== 'running').map((m) => `${m.name} ${m.state}`);
      if (shown.members.length !== WEBS + 1 || notRunning.length > 0)
        throw new Error(`environment ${name} has ${shown.members.map((m) => `${m.name} ${m.state}`).join(', ')}`);
      if (!shown.service) throw new Error(`environment ${name} has no service`);
      await check(`knarr ${name}`, `${shown.service.address}:${shown.service.port}`, webNames(name));
      const d = (m) => sum(after, m) - sum(before, m);
      const writes =
        `etcd ${d('etcd_disk_wal_fsync_duration_seconds_count')} fsyncs (${d('etcd_disk_wal_fsync_duration_seconds_sum').toFixed(2)} ` +
        `s), ${d('grpc_server_handled_total')} requests`;
      phases.push(`${phasesOf(JSON.parse(out).id, t0, t1, bare)}; ${writes}`);
      k('-q', 'env', 'destroy', name);
      knarr.push((t1 - t0) / 1000);
    },
    plain: async (round) => {
      const p = `bnp${round}`;
      const t0 = Date.now();
      const webs = [];
      for (let i = 1; i <= WEBS; i++) {
        webs.push(`${p}-web-${i}`);
        docker('run', '-d', '--name', `${p}-web-${i}`, '-p', '0:80', IMAGE, 'sh', '-c', web);
      }
      const ports = webs.map((w) => docker('port', w, '80/tcp').split('\n')[0].split(':').pop());
      // The webs alone (reported): what is left when the balancer's own container and its backends are not counted.
      const tWebs = Date.now();
      docker('run', '-d', '--name', `${p}-lb`, '-p', '0:8080', '-v', `${dir}/lb:/lb`, IMAGE, 'nc', '-ll', '-p', '8080', '-e', '/lb/forward');
      const service = `127.0.0.1:${docker('port', `${p}-lb`, '8080/tcp').split('\n')[0].split(':').pop()}`;
      writeFileSync(`${dir}/lb/backends`, `${ports.map((port) => `${gateway}:${port}`).join(' ')}\n`);
      const t1 = Date.now();
      await check(`plain ${p}`, service, webs);
      docker('rm', '-f', ...webs, `${p}-lb`);
      rmSync(`${dir}/lb/next`, { force: true });
      rmSync(`${dir}/lb/backends`, { force: true });
      plain.push((t1 - t0) / 1000);
      websOnly.push((tWebs - t0) / 1000);
    },
  };
  const { kn, pl, ratio } = await pairedRounds(sides, ROUNDS, knarr, plain, [websOnly, phases]);
  for (const [i, p] of phases.entries()) console.log(`  round ${i}: ${p}`);
  console.log(
    `env create, ${WEBS} webs + balancer on one host: knarr ${kn.toFixed(2)} s, plain docker run -d x${WEBS + 1} + docker port + ` +
      `backends file ${pl.toFixed(2)} s (medians, ratio ${(kn / pl).toFixed(2)}); median of the rounds' ratios ${ratio.toFixed(2)} ` +
      `(target <= 1.5) ${ratio <= 1.5 ? 'PASS' : 'FAIL'}`,
  );
  const webRatio = median(knarr.map((x, i) => x / websOnly[i]));
  console.log(
    `  reported: against the ${WEBS} webs' docker run -d + docker port alone (no balancer) ${median(websOnly).toFixed(2)} s, ` +
      `median of the rounds' ratios ${webRatio.toFixed(2)}`,
  );
} catch (e) {
  const log = `${dir}/agent.log`;
  if (existsSync(log)) console.error(`--- agent ${HOST}:\n${readFileSync(log, 'utf8').split('\n').slice(-30).join('\n')}`);
  throw e;
} finally {
  await cleanup();
}

/**
 * Where a create's milliseconds went: the CLI before its operation was queued and after it ended, the agent's pickup,
 * each member's child operation, the parent's own steps between them (hooks, history, the record's CAS), and its end.
 */
function phasesOf(id, t0, t1, bare) {
  const op = JSON.parse(k('--json', 'op', 'show', id));
  const children = op.children.map((c) => JSON.parse(k('--json', 'op', 'show', c))).sort((a, b) => at(a.createdAt) - at(b.createdAt));
  const history = JSON.parse(k('--json', 'env', 'events', op.args.env));
  const hooks = history.filter((h) => h.durationMs !== undefined);
  const ms = (x) => `${Math.round(x)}`;
  const inChildren = children.reduce((a, c) => a + (at(c.finishedAt) - at(c.createdAt)), 0);
  const each = children.map((c) => `${c.args.member.replace(/^bn\w+?-/, '')} ${ms(at(c.finishedAt) - at(c.createdAt))}`);
  // Inside each web's child: the scheduler's placement (its intent written), the agent's converge until the engine made the
  // container, docker's create+start, and the records after (actual state, service, the child's end), from the job's history and docker.
  const split = [0, 0, 0, 0];
  for (const c of children.filter((x) => x.kind === 'env.member' && x.args.member.includes('-web-'))) {
    const placed = JSON.parse(k('--json', 'job', 'history', c.args.member)).find((e) => e.event === 'placed');
    const [created, started] = docker('inspect', '-f', '{{.Created}} {{.State.StartedAt}}', `knarr-${c.args.member}`).trim().split(' ').map(at);
    const cuts = [at(c.createdAt), at(placed.at), created, started, at(c.finishedAt)];
    for (let i = 0; i < 4; i++) split[i] += cuts[i + 1] - cuts[i];
  }
  return (
    `wall ${ms(t1 - t0)} ms: CLI to queued ${ms(at(op.createdAt) - t0)} (knarr --version alone ${bare}), agent ` +
    `pickup ${ms(at(op.startedAt) - at(op.createdAt))}, ` +
    `members [${each.join(', ')}] = ${ms(inChildren)} (webs: placement ${ms(split[0])}, converge to docker create ${ms(split[1])}, ` +
    `docker create+start ${ms(split[2])}, records after ${ms(split[3])}), parent's own steps ${ms(at(op.finishedAt) - at(op.startedAt) - inChildren)} ` +
    `(${hooks.length} hook runs, ${ms(hooks.reduce((a, h) => a + h.durationMs, 0))} in them; ${history.length} history lines), ` +
    `CLI after the end ${ms(t1 - at(op.finishedAt))}`
  );
}
