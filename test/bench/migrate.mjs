// Cold migration of a cluster node between two hosts (network namespaces, each with its own agent, dir pool and
// LXC), against the plain tools in the same run:
//  - `knarr cluster migrate` of a node with a 256 MiB volume, A to B and back (the CLI's wall clock, through
//    a durable operation, its child on the target's agent, the volume over the agents' API, sha256 checked);
//  - plain: `lxc-stop` on A, `tar | tar` of the node's writable layer into B's pool over the network between the
//    two hosts (tar into busybox nc on A, out of nc into tar on B), the config copied over, `lxc-start` on B, A's
//    copy removed (what an operator's script does), A to B and back;
//  - ratio of the medians (target <= 1.3), and the downtime windows (stop on A to running on B).
// A report: exits 0 once measured.
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchEnv } from './lib/env.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/knarr');
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 3);
const MIB = Number(process.env.KNARR_BENCH_MIGRATE_MIB ?? 256);
const TAR = spawnSync('sh', ['-c', 'command -v tar'], { encoding: 'utf8' }).stdout.trim();
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

if (!existsSync(join(ROOT, 'dist/bundle/knarr.cjs'))) {
  console.error('migrate: build first (npm run bench does)');
  process.exit(1);
}
if (process.getuid?.() !== 0) {
  console.log('migrate: skipped (needs root for network namespaces and LXC)');
  process.exit(0);
}
for (const tool of ['lxc-start', 'etcd', 'busybox', 'ip', 'nsenter', 'unshare', 'tar']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.log(`migrate: skipped (${tool} missing)`);
    process.exit(0);
  }
}

const routes = spawnSync('ip', ['-o', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout;
const freeOctet = (taken = []) => {
  for (;;) {
    const o = randomInt(100, 250);
    if (!routes.includes(`10.${o}.`) && !taken.includes(o)) return o;
  }
};
const fabricOctet = freeOctet();
const clusterOctet = freeOctet([fabricOctet]);
const tag = `km${randomInt(36 ** 3)
  .toString(36)
  .padStart(3, '0')}`;
const fabric = `${tag}br`;
const gateway = `10.${fabricOctet}.7.1`;
const dir = mkdtempSync(join(tmpdir(), 'knarr-bench-migrate-'));
const tokenFile = `${dir}/agent.token`;
writeFileSync(tokenFile, `${randomInt(2 ** 47).toString(36)}-migrate-bench-token\n`, { mode: 0o600 });
const port = 20000 + randomInt(20000);
const hosts = ['a', 'b'].map((name, i) => ({ name: `${tag}${name}`, ns: `${tag}-${name}`, ip: `10.${fabricOctet}.7.${i + 2}`, state: `${dir}/${name}/state` }));
const [A, B] = hosts;

const sh = (argv, env = process.env) => {
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
};
// Inside a host: its network namespace, and a /sys of its own (LXC looks for the bridge there) over the machine's cgroups.
const SYSFS =
  'mkdir -p /run/knarr-netns-cgroup && mount --rbind /sys/fs/cgroup /run/knarr-netns-cgroup && mount -t sysfs sysfs /sys && mount --rbind ' +
  '/run/knarr-netns-cgroup /sys/fs/cgroup && exec "$@"';
const inHost = (h, argv) => ['nsenter', `--net=/run/netns/${h.ns}`, '--', 'unshare', '--mount', '--propagation', 'slave', 'sh', '-c', SYSFS, 'sh', ...argv];
const env = benchEnv({
  KNARR_ETCD: `http://${gateway}:${port}`,
  KNARR_FLEET: 'benchmigrate',
  KNARR_CLUSTER_NETWORK: `10.${clusterOctet}.0.0/16`,
  KNARR_CLUSTER_BRIDGE: `${tag}nb`,
  KNARR_USER: 'bench',
  KNARR_AGENT_TOKEN_FILE: tokenFile,
  DOCKER_HOST: `unix://${dir}/no-docker.sock`,
});
const knarr = (h, ...argv) => sh(inHost(h, [BIN, '--state-dir', h.state, ...argv]), env);
const seconds = (t) => Number(process.hrtime.bigint() - t) / 1e9;

const children = [];
const forwardRule = ['FORWARD', '-i', fabric, '-o', fabric, '-m', 'comment', '--comment', `knarr-bench ${tag}`, '-j', 'ACCEPT'];
let forwardAdded = false;
function cleanup() {
  for (const h of hosts) {
    const names =
      spawnSync('lxc-ls', ['-P', `${h.state}/lxc`, '-1'], { encoding: 'utf8' })
        .stdout?.split('\n')
        .filter(Boolean) ?? [];
    for (const n of names) spawnSync('nsenter', [`--net=/run/netns/${h.ns}`, '--', 'lxc-stop', '-P', `${h.state}/lxc`, '-n', n, '-k']);
  }
  for (const c of children) c.kill('SIGKILL');
  for (const [i, h] of hosts.entries()) {
    spawnSync('ip', ['netns', 'del', h.ns]);
    spawnSync('ip', ['link', 'del', `${tag}v${i}`]);
  }
  if (forwardAdded) spawnSync('iptables', ['-D', ...forwardRule]);
  spawnSync('ip', ['link', 'del', fabric]);
  rmSync(dir, { recursive: true, force: true });
}

try {
  sh(['ip', 'link', 'add', fabric, 'type', 'bridge']);
  sh(['ip', 'addr', 'add', `${gateway}/24`, 'dev', fabric]);
  sh(['ip', 'link', 'set', fabric, 'up']);
  // With br_netfilter loaded, host-to-host frames cross FORWARD, whose policy docker sets to DROP: this bridge's own traffic goes through.
  if (spawnSync('iptables', ['-I', ...forwardRule]).status === 0) forwardAdded = true;
  for (const [i, h] of hosts.entries()) {
    sh(['ip', 'netns', 'add', h.ns]);
    sh(['ip', 'link', 'add', `${tag}v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
    sh(['ip', 'link', 'set', `${tag}v${i}`, 'master', fabric, 'up']);
    sh(['ip', '-n', h.ns, 'link', 'set', 'lo', 'up']);
    sh(['ip', '-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0']);
    sh(['ip', '-n', h.ns, 'link', 'set', 'eth0', 'up']);
    sh(['ip', '-n', h.ns, 'route', 'add', 'default', 'via', gateway]);
  }
  const etcd = spawn(
    'etcd',
    [
      '--name',
      'm',
      '--data-dir',
      `${dir}/etcd`,
      '--listen-client-urls',
      `http://${gateway}:${port}`,
      '--advertise-client-urls',
      `http://${gateway}:${port}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${port + 1}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${port + 1}`,
      '--initial-cluster',
      `m=http://127.0.0.1:${port + 1}`,
    ],
    { stdio: 'ignore' },
  );
  children.push(etcd);
  for (let i = 0; i < 100; i++) {
    if (spawnSync('etcdctl', ['--endpoints', env.KNARR_ETCD, 'endpoint', 'health'], { env: { ...env, ETCDCTL_API: '3' } }).status === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const h of hosts) {
    const agent = spawn(
      inHost(h, [BIN])[0],
      inHost(h, [
        BIN,
        '--state-dir',
        h.state,
        ...(process.env.KNARR_BENCH_AGENT_LOGS ? ['-v'] : []),
        'daemon',
        '--name',
        h.name,
        '--listen',
        `${h.ip}:7946`,
        '--ttl',
        '2',
        '--token-file',
        tokenFile,
      ]).slice(1),
      { env, stdio: ['ignore', 'ignore', process.env.KNARR_BENCH_AGENT_LOGS ? 'pipe' : 'ignore'] },
    );
    // Each line of the agent's log with the time it came, to see where a migration spends it.
    agent.stderr?.on('data', (b) => {
      for (const line of String(b).split('\n').filter(Boolean)) console.log(`${(Date.now() % 100000).toString().padStart(5)} ${h.name}: ${line.slice(0, 160)}`);
    });
    children.push(agent);
  }
  for (let i = 0; ; i++) {
    const up = JSON.parse(knarr(A, '--json', 'host', 'list'))
      .filter((h) => h.up)
      .map((h) => h.name);
    if (up.length === 2 && hosts.every((h) => existsSync(`${h.state}/agent.json`))) break;
    if (i > 300) throw new Error(`the agents did not come up: ${up.join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // After the agents: both hosts share the machine's hostname, and the CLI takes its host's name from the agent.
  for (const h of hosts) {
    knarr(h, '-q', 'pool', 'init', '--name', 'nodes', '--driver', 'dir');
    knarr(h, '-q', 'image', 'import', 'base', '--busybox');
  }
  knarr(A, '-q', 'cluster', 'create', 'mig', '--size', '1');
  knarr(A, 'cluster', 'exec', 'mig', '0', '--', 'dd', 'if=/dev/urandom', 'of=/root/blob', 'bs=1M', `count=${MIB}`);
  const node = JSON.parse(knarr(A, '--json', 'cluster', 'show', 'mig')).nodes[0];
  const container = node.container;
  const volume = (h) => `${h.state}/mnt/nodes/knarr-clusters/${container}`;
  const lxcDir = (h) => `${h.state}/lxc/${container}`;

  // knarr: the CLI on the node's host, to its end (the node runs on the other host, the source's copy gone).
  const viaKnarr = (from, to) => {
    const t = process.hrtime.bigint();
    const op = JSON.parse(knarr(from, '--json', 'cluster', 'migrate', 'mig', '0', '--to', to.name));
    if (process.env.KNARR_BENCH_PHASES) console.log(`  ${from.name} -> ${to.name}: ${JSON.stringify(op.result.phasesMs)}`);
    return { total: seconds(t), window: op.result.downtimeMs / 1000 };
  };
  // Plain: stop, tar | tar into the other host's pool, the config with the other host's paths, start there, the source's copy removed.
  const plain = async (from, to) => {
    const t = process.hrtime.bigint();
    sh(['nsenter', `--net=/run/netns/${from.ns}`, '--', 'lxc-stop', '-P', `${from.state}/lxc`, '-n', container, '-t', '10']);
    rmSync(volume(to), { recursive: true, force: true });
    sh(['mkdir', '-p', volume(to), lxcDir(to)]);
    // Between hosts, over the network as knarr's stream goes: tar into a socket on A, out of one into tar on B.
    const flags = ['--xattrs', '--xattrs-include=*', '--numeric-owner'];
    const nport = 30000 + randomInt(20000);
    const recv = spawn(
      'nsenter',
      [`--net=/run/netns/${to.ns}`, '--', 'busybox', 'nc', '-l', '-p', String(nport), '-e', TAR, ...flags, '-C', volume(to), '-xpf', '-'],
      {
        stdio: 'inherit',
      },
    );
    const received = new Promise((r) => recv.once('close', r));
    for (let i = 0; ; i++) {
      if (spawnSync('nsenter', [`--net=/run/netns/${to.ns}`, '--', 'ss', '-Hltn', `sport = :${nport}`], { encoding: 'utf8' }).stdout.trim()) break;
      if (i > 200) throw new Error('nc did not listen');
      await new Promise((r) => setTimeout(r, 5));
    }
    const sent = spawnSync('nsenter', [
      `--net=/run/netns/${from.ns}`,
      '--',
      'busybox',
      'nc',
      to.ip,
      String(nport),
      '-e',
      TAR,
      ...flags,
      '-C',
      volume(from),
      '-cf',
      '-',
      '.',
    ]);
    const code = await received;
    if (sent.status !== 0 || code !== 0) throw new Error(`tar | nc ... nc | tar exited ${sent.status}, ${code}`);
    writeFileSync(`${lxcDir(to)}/config`, readFileSync(`${lxcDir(from)}/config`, 'utf8').replaceAll(from.state, to.state));
    sh(inHost(to, ['lxc-start', '-P', `${to.state}/lxc`, '-n', container, '-d']));
    const window = seconds(t);
    rmSync(lxcDir(from), { recursive: true, force: true });
    rmSync(volume(from), { recursive: true, force: true });
    return { total: seconds(t), window };
  };

  const k = [];
  const p = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Each moves the node there and back: the record and the node end where they began.
    k.push(viaKnarr(A, B), viaKnarr(B, A));
    p.push(await plain(A, B), await plain(B, A));
  }
  const stat = (xs, key) => median(xs.map((x) => x[key]));
  const ratio = stat(k, 'total') / stat(p, 'total');
  console.log(`  node with ${MIB} MiB, ${ROUNDS * 2} moves each, medians:`);
  console.log(`  knarr cluster migrate:                     ${stat(k, 'total').toFixed(2)} s (stop-to-start window ${stat(k, 'window').toFixed(2)} s)`);
  console.log(`  lxc-stop, tar | nc, nc | tar, lxc-start:  ${stat(p, 'total').toFixed(2)} s (stop-to-start window ${stat(p, 'window').toFixed(2)} s)`);
  console.log(`  ratio ${ratio.toFixed(2)} (target <= 1.3)${ratio <= 1.3 ? '' : '  ABOVE TARGET'}`);
} finally {
  cleanup();
}
