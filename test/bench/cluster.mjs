// LXC clusters against plain LXC, in the same run, on a private etcd and a dir pool:
//  - `knarr cluster create` of 10 nodes (create and start, through a durable operation) against
//    plain LXC making the same 10 containers: `lxc-create` of a container over the base image, then
//    per node `lxc-copy -s -B overlay` (LXC's way to make an overlay container over another's rootfs;
//    lxc-create itself has no overlay backing store) and `lxc-start` with the node's hostname and
//    address (target ratio <= 1.3);
//  - also reported: against writing the 10 configs by hand and lxc-starting each (no lxc tool to create);
//  - knarr's seconds per node at sizes 1, 5 and 10.
// A report: exits 0 once measured.
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchEnv } from './lib/env.mjs';
import { lxcCopyStart } from './lib/plain-lxc.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/knarr');
const ROUNDS = Number(process.env.KNARR_BENCH_ROUNDS ?? 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

if (!existsSync(join(ROOT, 'dist/bundle/knarr.cjs'))) {
  console.error('cluster: build first (npm run bench does)');
  process.exit(1);
}
for (const tool of ['lxc-start', 'etcd', 'busybox', 'ip']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.log(`cluster: skipped (${tool} missing)`);
    process.exit(0);
  }
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const routes = spawnSync('ip', ['-o', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout;
let octet;
do octet = randomInt(100, 200);
while (routes.includes(`10.${octet}.`));

const dir = mkdtempSync(join(tmpdir(), 'knarr-bench-cluster-'));
const tag = randomInt(36 ** 4)
  .toString(36)
  .padStart(4, '0');
const bridge = `kb${tag}`;
const plainBridge = `kp${tag}`;
const [client, peer] = [await freePort(), await freePort()];
const etcd = spawn(
  'etcd',
  [
    '--name',
    'b',
    '--data-dir',
    `${dir}/etcd`,
    '--listen-client-urls',
    `http://127.0.0.1:${client}`,
    '--advertise-client-urls',
    `http://127.0.0.1:${client}`,
    '--listen-peer-urls',
    `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${peer}`,
    '--initial-cluster',
    `b=http://127.0.0.1:${peer}`,
  ],
  { stdio: 'ignore' },
);
const env = {
  ...benchEnv(),
  KNARR_STATE_DIR: `${dir}/state`,
  KNARR_ETCD: `http://127.0.0.1:${client}`,
  KNARR_FLEET: 'bench',
  KNARR_CLUSTER_NETWORK: `10.${octet}.0.0/16`,
  KNARR_CLUSTER_BRIDGE: bridge,
  KNARR_USER: 'bench',
  DOCKER_HOST: `unix://${dir}/no-docker.sock`,
};
const sh = (argv) => {
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
};
const timed = (fn) => {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
};
const plainPath = `${dir}/plain-lxc`;
const lxcPath = `${dir}/state/lxc`;

function cleanup() {
  for (const p of [plainPath, lxcPath]) {
    const names = spawnSync('lxc-ls', ['-P', p, '-1'], { encoding: 'utf8' }).stdout?.split('\n').filter(Boolean) ?? [];
    for (const n of names) spawnSync('lxc-stop', ['-P', p, '-n', n, '-k']);
  }
  for (const b of [bridge, plainBridge]) spawnSync('ip', ['link', 'del', b]);
  etcd.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}

try {
  for (let i = 0; i < 100; i++) {
    if (spawnSync('etcdctl', ['--endpoints', env.KNARR_ETCD, 'endpoint', 'health'], { env: { ...env, ETCDCTL_API: '3' } }).status === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  sh([BIN, '-q', 'pool', 'init', '--name', 'nodes', '--driver', 'dir']);
  sh([BIN, '-q', 'image', 'import', 'base', '--busybox']);
  const base = `${dir}/state/mnt/nodes/knarr-images/base/rootfs`;
  sh(['ip', 'link', 'add', plainBridge, 'type', 'bridge']);
  sh(['ip', 'addr', 'add', `10.${octet}.250.1/24`, 'dev', plainBridge]);
  sh(['ip', 'link', 'set', plainBridge, 'up']);
  mkdirSync(`${dir}/plain-share`, { recursive: true });
  writeFileSync(`${dir}/plain-hosts`, '127.0.0.1 localhost\n');

  // The plain way: what an operator's script does for each node, with the same overlay, network and binds.
  const plain = (n, round) => {
    for (let i = 0; i < n; i++) {
      const name = `p${round}-${i}`;
      mkdirSync(`${plainPath}/${name}`, { recursive: true });
      mkdirSync(`${dir}/plain-nodes/${name}/delta`, { recursive: true });
      writeFileSync(
        `${plainPath}/${name}/config`,
        [
          `lxc.uts.name = host-${i}`,
          `lxc.rootfs.path = overlay:${base}:${dir}/plain-nodes/${name}/delta`,
          'lxc.init.cmd = /sbin/knarr-init',
          'lxc.autodev = 1',
          'lxc.mount.auto = proc:mixed sys:ro',
          'lxc.net.0.type = veth',
          `lxc.net.0.link = ${plainBridge}`,
          'lxc.net.0.flags = up',
          'lxc.net.0.name = eth0',
          `lxc.net.0.ipv4.address = 10.${octet}.250.${i + 2}/24 10.${octet}.250.255`,
          `lxc.net.0.ipv4.gateway = 10.${octet}.250.1`,
          `lxc.mount.entry = ${dir}/plain-hosts etc/hosts none bind,ro,create=file 0 0`,
          `lxc.mount.entry = ${dir}/plain-share nfs none bind,create=dir 0 0`,
          '',
        ].join('\n'),
      );
      sh(['lxc-start', '-P', plainPath, '-n', name, '-d']);
    }
  };
  const plainDown = (n, round) => {
    for (let i = 0; i < n; i++) {
      for (const name of [`p${round}-${i}`, `q${round}-${i}`]) {
        spawnSync('lxc-stop', ['-P', plainPath, '-n', name, '-k']);
        rmSync(`${plainPath}/${name}`, { recursive: true, force: true });
        rmSync(`${dir}/plain-nodes/${name}`, { recursive: true, force: true });
      }
    }
    // Never lxc-destroy: for a dir rootfs it deletes the base image itself.
    rmSync(`${plainPath}/base`, { recursive: true, force: true });
  };

  // Plain LXC's tools: a container over the base image, then an overlay copy of it per node.
  const tools = lxcCopyStart({
    lxcPath: plainPath,
    base,
    bridge: plainBridge,
    net: `10.${octet}.250`,
    hostsFile: `${dir}/plain-hosts`,
    share: `${dir}/plain-share`,
    conf: `${dir}/plain-base.conf`,
  });
  const lxcTools = (n, round) => tools.up(n, round);

  const perNode = {};
  let knarr10 = [];
  const plain10 = [];
  const tools10 = [];
  for (const size of [1, 5, 10]) {
    const times = [];
    for (let round = 0; round < ROUNDS; round++) {
      const name = `b${size}-${round}`;
      times.push(timed(() => sh([BIN, '-q', 'cluster', 'create', name, '--size', String(size)])));
      sh([BIN, '-q', 'cluster', 'delete', name]);
      if (size === 10) {
        plain10.push(timed(() => plain(10, round)));
        plainDown(10, round);
        tools10.push(timed(() => lxcTools(10, round)));
        plainDown(10, round);
      }
    }
    perNode[size] = median(times) / size;
    if (size === 10) knarr10 = times;
  }
  const k = median(knarr10);
  const p = median(plain10);
  const t = median(tools10);
  console.log(
    `cluster create+start, 10 nodes: knarr ${k.toFixed(2)} s, plain lxc-create/lxc-copy/lxc-start ${t.toFixed(2)} s, ratio ${(k / t).toFixed(2)} ` +
      `(target <= 1.3) ${k / t <= 1.3 ? 'PASS' : 'FAIL'}`,
  );
  console.log(`  reported: against configs written by hand + lxc-start ${p.toFixed(2)} s, ratio ${(k / p).toFixed(2)}`);
  console.log(`knarr seconds per node: size 1 ${perNode[1].toFixed(3)}, size 5 ${perNode[5].toFixed(3)}, size 10 ${perNode[10].toFixed(3)}`);
} finally {
  cleanup();
}
