import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetKeys } from '../../src/state/keys.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { pickNetwork } from '../harness/net.js';
import { haveNetns, makeFabric, withNetnsSysfs, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'cluster migrate between two hosts',
  haveNetns() && haveTools('lxc-start', 'lxc-attach', 'bridge', 'nft', 'etcd'),
  'needs root, iproute2, nftables, lxc, dockerd, busybox-static and etcd',
);
const KNARR = resolve('bin/knarr');
const BRIDGE = 'kmgbr0';
const FLEET = 'migrate';

interface Node {
  index: number;
  container: string;
  hostname: string;
  ip: string;
  host: string;
}

/**
 * Two netns hosts, each with its agent, a dir pool and real LXC: a node with 100 MiB in it moves from one to
 * the other with its name, hostname, address, MAC and bytes, while the node left behind reaches it by name.
 */
describe.skipIf(!run)('cluster migrate (real LXC on two netns hosts)', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let etcd: EtcdInstance;
  let store: Store;
  let ha: NetHost, hb: NetHost;
  let env: Record<string, string>;
  const agents: ResultPromise[] = [];
  const k = (h: NetHost, ...argv: string[]) => h.exec(KNARR, ['--state-dir', `${h.dir}/state`, ...argv], { env: { ...h.dockerd.env, ...env }, reject: false });
  const ok = async (h: NetHost, ...argv: string[]) => {
    const r = await k(h, ...argv);
    expect(r.exitCode, `${argv.join(' ')}: ${String(r.stderr)}`).toBe(0);
    return String(r.stdout);
  };
  const nodes = async () => (JSON.parse(await ok(ha, '--json', 'cluster', 'show', 'm')) as { nodes: Node[] }).nodes;
  const inNode = (h: NetHost, node: number, ...cmd: string[]) => ok(h, 'cluster', 'exec', 'm', String(node), '--', ...cmd);
  const pingsByName = async (h: NetHost, from: number, to: string) =>
    (await k(h, 'cluster', 'exec', 'm', String(from), '--', 'ping', '-c', '1', '-W', '1', to)).exitCode;
  const lxcNames = async (h: NetHost) =>
    String((await h.exec('lxc-ls', ['-P', `${h.dir}/state/lxc`, '-1'], { reject: false })).stdout)
      .split('\n')
      .filter(Boolean);

  beforeAll(async () => {
    tmp = await tempDir('knarr-migrate-');
    fabric = await makeFabric(tmp.path);
    etcd = await startEtcd(fabric.gateway);
    store = await connectEtcd([etcd.url]);
    [ha, hb] = (await Promise.all(['ma', 'mb'].map((n) => fabric.addHost(n)))) as [NetHost, NetHost];
    const tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'migrate-test-token\n', { mode: 0o600 });
    env = {
      KNARR_ETCD: etcd.url,
      KNARR_FLEET: FLEET,
      KNARR_CLUSTER_NETWORK: await pickNetwork(),
      KNARR_CLUSTER_BRIDGE: BRIDGE,
      KNARR_USER: 'alice',
      KNARR_AGENT_TOKEN_FILE: tokenFile,
    };
    for (const h of [ha, hb]) {
      await ok(h, 'pool', 'init', '--name', 'nodes', '--driver', 'dir');
      await ok(h, 'image', 'import', 'base', '--busybox');
      agents.push(
        // The agent runs the cluster operations, so LXC: it needs the host's own /sys.
        h.spawn(
          ...withNetnsSysfs(KNARR, [
            '--state-dir',
            `${h.dir}/state`,
            'daemon',
            '--name',
            h.name,
            '--listen',
            `${h.ip}:7946`,
            '--ttl',
            '2',
            '--token-file',
            tokenFile,
          ]),
          {
            env: { ...h.dockerd.env, ...env },
            reject: false,
            stdio: ['ignore', 'ignore', 'pipe'],
          },
        ),
      );
    }
    await eventually(async () => {
      const up = (JSON.parse(await ok(ha, '--json', 'host', 'list')) as { name: string; up: boolean }[]).filter((h) => h.up).map((h) => h.name);
      expect(up.sort()).toEqual(['ma', 'mb']);
    }, 30_000);
    // A host that was in the fleet and whose agent is gone: a record without a lease.
    const now = new Date().toISOString();
    await store.put(
      fleetKeys(FLEET).host('mgone'),
      JSON.stringify({
        name: 'mgone',
        address: 'http://127.0.0.1:9',
        dockerEndpoint: 'unix:///nowhere',
        tags: [],
        capacity: { cpu: 1000, memory: 1 << 30 },
        load: { runningJobs: 0, freeMemory: 1 << 30 },
        state: 'ok',
        joinedAt: now,
        updatedAt: now,
      }),
    );
    await ok(ha, 'cluster', 'create', 'm', '--size', '2');
  }, 240_000);

  afterAll(async () => {
    if (ha) await k(ha, 'cluster', 'delete', 'm');
    for (const a of agents) a.kill('SIGKILL');
    const ended = await Promise.all(agents);
    if (process.env.KNARR_TEST_AGENT_LOGS) for (const e of ended) console.warn(String(e.stderr));
    // A node left behind by a failed run must not outlive the test.
    for (const h of [ha, hb].filter(Boolean))
      for (const n of await lxcNames(h)) await h.exec('lxc-stop', ['-P', `${h.dir}/state/lxc`, '-n', n, '-k'], { reject: false });
    await store?.close();
    await fabric?.teardown();
    await etcd?.stop();
    await tmp?.cleanup();
  }, 180_000);

  it('a migration to an unknown or a down host, and one under --dry-run, change nothing', async () => {
    const before = await nodes();
    const unknown = await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'nosuch');
    expect(unknown.exitCode).toBe(3);
    expect(String(unknown.stderr)).toMatch(/no host nosuch/);
    const down = await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'mgone');
    expect(down.exitCode).toBe(5);
    expect(String(down.stderr)).toMatch(/host mgone is down/);
    const same = await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'ma');
    expect(same.exitCode).toBe(4);
    const dry = await k(ha, '--dry-run', 'cluster', 'migrate', 'm', '1', '--to', 'mb');
    expect(dry.exitCode, String(dry.stderr)).toBe(0);
    expect(String(dry.stdout)).toMatch(/^lxc-stop .* -n alice-\d+-1 /m);
    expect(String(dry.stdout)).toMatch(/on mb .*cluster\.migrate-in/);
    expect(await nodes()).toEqual(before);
    expect((await lxcNames(hb)).length).toBe(0);
    expect(String(await inNode(ha, 1, 'hostname')).trim()).toBe('host-1');
  }, 120_000);

  it('a failure on the target after the volume arrived: the node runs on its host again, the target keeps nothing of it', async () => {
    const before = await nodes();
    await inNode(ha, 1, 'sh', '-c', 'echo kept > /root/kept');
    // The target's base image is missing from under its record: lxc-start fails there, after the copy.
    const rootfs = (JSON.parse(await ok(hb, '--json', 'image', 'list')) as { name: string; rootfs: string }[]).find((i) => i.name === 'base')!.rootfs;
    await hb.exec('mv', [rootfs, `${rootfs}.away`]);
    try {
      const r = await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'mb');
      expect(r.exitCode).toBe(1);
      expect(String(r.stderr)).toMatch(/failed \(undone\): on mb: lxc-start/);
    } finally {
      await hb.exec('mv', [`${rootfs}.away`, rootfs]);
    }
    expect(await nodes()).toEqual(before);
    expect(String(await inNode(ha, 1, 'cat', '/root/kept')).trim()).toBe('kept');
    expect(await pingsByName(ha, 0, 'host-1')).toBe(0);
    expect(await lxcNames(hb)).toEqual([]);
    expect(String((await hb.exec('ls', [`${hb.dir}/state/mnt/nodes/knarr-clusters`], { reject: false })).stdout).trim()).toBe('');
  }, 120_000);

  it('a node with 100 MiB moves to the other host with its name, hostname, address, MAC and bytes; its peer reaches it by name before and after', async () => {
    await inNode(ha, 1, 'dd', 'if=/dev/urandom', 'of=/root/blob', 'bs=1M', 'count=100');
    const sum = String(await inNode(ha, 1, 'sha256sum', '/root/blob')).split(' ')[0]!;
    const mac = String(await inNode(ha, 1, 'cat', '/sys/class/net/eth0/address')).trim();
    const before = (await nodes()).find((n) => n.index === 1)!;
    expect(before.host).toBe('ma');
    expect(await pingsByName(ha, 0, 'host-1')).toBe(0);

    const t = Date.now();
    const op = JSON.parse(await ok(ha, '--json', 'cluster', 'migrate', 'm', 'host-1', '--to', 'mb')) as {
      status: string;
      result: { downtimeMs: number; bytes: number; sha256: string; from: string; to: string };
    };
    const took = Date.now() - t;
    expect(op.status).toBe('done');
    expect(op.result).toMatchObject({ from: 'ma', to: 'mb' });
    expect(op.result.bytes).toBeGreaterThan(100 * 1024 * 1024);
    console.info(`cluster migrate of a node with 100 MiB: ${took} ms in all, stop-to-start window ${op.result.downtimeMs} ms`);

    const after = (await nodes()).find((n) => n.index === 1)!;
    expect(after).toMatchObject({ container: before.container, hostname: 'host-1', ip: before.ip, host: 'mb' });
    expect(String(await inNode(hb, 1, 'hostname')).trim()).toBe('host-1');
    expect(String(await inNode(hb, 1, 'sha256sum', '/root/blob')).split(' ')[0]).toBe(sum);
    expect(String(await inNode(hb, 1, 'cat', '/sys/class/net/eth0/address')).trim()).toBe(mac);
    expect(String(await inNode(hb, 1, 'ip', '-4', 'addr', 'show', 'eth0'))).toContain(`${before.ip}/24`);
    // The peer on the other host reaches it at the same name, through the overlay.
    const seen = Date.now();
    await eventually(async () => expect(await pingsByName(ha, 0, 'host-1')).toBe(0), 15_000, 200);
    console.info(`host-0 on ma reaches host-1 on mb ${Date.now() - seen} ms after the migration ended`);
    expect(await pingsByName(hb, 1, 'host-0')).toBe(0);
    // The source's copy went once the node ran on the target.
    expect(await lxcNames(ha)).not.toContain(before.container);
    expect((await ha.exec('ls', [`${ha.dir}/state/mnt/nodes/knarr-clusters`], { reject: false })).stdout).not.toContain(before.container);
    // It is not moved again to where it is.
    expect((await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'mb')).exitCode).toBe(4);
  }, 300_000);
});
