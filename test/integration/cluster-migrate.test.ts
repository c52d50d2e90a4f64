import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetKeys } from '../../src/state/keys.js';
import type { Store } from '../../src/state/store.js';
import { eventually } from '../harness/eventually.js';
import { lxcFleet, type LxcFleet } from '../harness/lxc-fleet.js';
import { haveNetns, type NetHost } from '../harness/netns.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'cluster migrate between two hosts',
  haveNetns() && haveTools('lxc-start', 'lxc-attach', 'bridge', 'nft', 'etcd'),
  'needs root, iproute2, nftables, lxc, dockerd, busybox-static and etcd',
);

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
/** The nodes' pool on each host: a plain directory, or btrfs on a loop file (each volume a subvolume). */
describe.skipIf(!run).each([
  ['dir', 'kmgbr0'],
  ['btrfs', 'kmgbr1'],
] as const)('cluster migrate on %s pools (real LXC on two netns hosts)', (driver, BRIDGE) => {
  const FLEET = `migrate-${driver}`;
  let f: LxcFleet;
  let store: Store;
  let ha: NetHost, hb: NetHost;
  const k = (h: NetHost, ...argv: string[]) => f.k(h, ...argv);
  const ok = (h: NetHost, ...argv: string[]) => f.ok(h, ...argv);
  const nodes = async () => (JSON.parse(await ok(ha, '--json', 'cluster', 'show', 'm')) as { nodes: Node[] }).nodes;
  const inNode = (h: NetHost, node: number, ...cmd: string[]) => ok(h, 'cluster', 'exec', 'm', String(node), '--', ...cmd);
  const pingsByName = async (h: NetHost, from: number, to: string) =>
    (await k(h, 'cluster', 'exec', 'm', String(from), '--', 'ping', '-c', '1', '-W', '1', to)).exitCode;
  const lxcNames = (h: NetHost) => f.lxcNames(h);

  beforeAll(async () => {
    // The fleet's shared data directory (/nfs of a cluster over several hosts), as every host mounts it.
    f = await lxcFleet({ prefix: 'knarr-migrate-', fleet: FLEET, hosts: ['ma', 'mb'], bridge: BRIDGE, share: true, driver });
    [ha, hb] = f.hosts as [NetHost, NetHost];
    store = f.store;
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
    await f?.teardown();
  }, 180_000);

  it('a migration to an unknown, a down, a draining, a full or the same host, or one splitting /nfs, and one under --dry-run, change nothing', async () => {
    const before = await nodes();
    const unknown = await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'nosuch');
    expect(unknown.exitCode).toBe(3);
    expect(String(unknown.stderr)).toMatch(/no host nosuch/);
    const down = await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'mgone');
    expect(down.exitCode).toBe(5);
    expect(String(down.stderr)).toMatch(/host mgone is down/);
    await ok(ha, 'host', 'drain', 'mb');
    const draining = await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'mb');
    await ok(ha, 'host', 'drain', 'mb', '--undo');
    expect(draining.exitCode).toBe(4);
    expect(String(draining.stderr)).toMatch(/host mb is draining/);
    // /nfs on each host's pool (a cluster made without the share): the node would see other files there.
    const key = fleetKeys(FLEET).cluster('alice', 'm');
    const record = (await store.get(key))!;
    await store.put(key, JSON.stringify({ ...JSON.parse(record), files: undefined }));
    const split = await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'mb');
    await store.put(key, record);
    expect(split.exitCode).toBe(4);
    expect(String(split.stderr)).toMatch(/would run on ma, mb with \/nfs on each host's pool/);
    // No room on mb for the node's memory (mb has about 25 GiB): refused before the node stops.
    await ok(ha, 'cluster', 'update', 'm', '1', '--memory', '4096G');
    const full = await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'mb');
    await ok(ha, 'cluster', 'update', 'm', '1', '--memory', 'none');
    expect(full.exitCode).toBe(4);
    expect(String(full.stderr)).toMatch(/cannot place cluster alice\/m: /);
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
    expect(await store.list(fleetKeys(FLEET).placeholders)).toEqual([]);
  }, 120_000);

  it('cancelled while the target cannot take it (its agent stopped): the node runs on its host again, unmoved', async () => {
    const before = await nodes();
    const agentB = f.agent(hb)!.pid!;
    // The agent itself, not a wrapper: nsenter, unshare and sh exec into it.
    expect(readFileSync(`/proc/${agentB}/cmdline`, 'utf8')).toContain('daemon');
    process.kill(agentB, 'SIGSTOP');
    let id: string;
    try {
      id = (JSON.parse(await ok(ha, '--json', 'cluster', 'migrate', 'm', '1', '--to', 'mb', '--detach')) as { id: string }).id;
      // The node is stopped on ma, its child waits in mb's queue.
      await eventually(async () => expect(String(await ok(ha, 'op', 'show', id))).toMatch(/op-\d+/), 10_000);
      await eventually(async () => expect((await k(ha, 'cluster', 'exec', 'm', '1', '--', 'true')).exitCode).not.toBe(0), 10_000, 100);
      await ok(ha, 'op', 'cancel', id);
    } finally {
      process.kill(agentB, 'SIGCONT');
    }
    const ended = await k(ha, 'op', 'wait', id);
    expect(String(ended.stderr)).toMatch(/was cancelled \(undone\)/);
    expect(await nodes()).toEqual(before);
    expect(String(await inNode(ha, 1, 'hostname')).trim()).toBe('host-1');
    expect(await lxcNames(hb)).toEqual([]);
  }, 120_000);

  it('a node with 100 MiB moves to the other host with its name, hostname, address, MAC and bytes; its peer reaches it by name before and after', async () => {
    await inNode(ha, 1, 'dd', 'if=/dev/urandom', 'of=/root/blob', 'bs=1M', 'count=100');
    await inNode(ha, 1, 'sh', '-c', 'echo from-ma > /nfs/note');
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
    expect(String(await inNode(hb, 1, 'cat', '/nfs/note')).trim()).toBe('from-ma');
    expect(String(await inNode(hb, 1, 'ip', '-4', 'addr', 'show', 'eth0'))).toContain(`${before.ip}/24`);
    // The peer on the other host reaches it at the same name, through the overlay.
    const seen = Date.now();
    await eventually(async () => expect(await pingsByName(ha, 0, 'host-1')).toBe(0), 15_000, 200);
    console.info(`host-0 on ma reaches host-1 on mb ${Date.now() - seen} ms after the migration ended`);
    expect(await pingsByName(hb, 1, 'host-0')).toBe(0);
    // The source's copy went once the node ran on the target.
    expect(await lxcNames(ha)).not.toContain(before.container);
    expect((await ha.exec('ls', [`${ha.dir}/state/mnt/nodes/knarr-clusters`], { reject: false })).stdout).not.toContain(before.container);
    // Its room on mb was held by a placeholder until the record put it there.
    expect(await store.list(fleetKeys(FLEET).placeholders)).toEqual([]);
    // It is not moved again to where it is.
    expect((await k(ha, 'cluster', 'migrate', 'm', '1', '--to', 'mb')).exitCode).toBe(4);
  }, 300_000);

  it('the source agent killed -9 mid-migration and started again: the node ends on one host, the one its record names, with its bytes', async () => {
    // host-1 is on mb now: it goes back, and mb's agent (the operation's runner) dies on the way.
    const sum = String(await inNode(hb, 1, 'sha256sum', '/root/blob')).split(' ')[0]!;
    const { container } = (await nodes()).find((n) => n.index === 1)!;
    const id = (JSON.parse(await ok(hb, '--json', 'cluster', 'migrate', 'm', '1', '--to', 'ma', '--detach')) as { id: string }).id;
    await eventually(async () => expect((JSON.parse(await ok(hb, '--json', 'op', 'show', id)) as { children: string[] }).children.length).toBe(1), 10_000, 50);
    await f.killAgent(hb);
    f.startAgent(hb);
    await k(hb, 'op', 'wait', id);
    const ended = JSON.parse(await ok(hb, '--json', 'op', 'show', id)) as { status: string };
    const node = (await nodes()).find((n) => n.index === 1)!;
    console.info(`migration whose runner was killed: ${ended.status}, node on ${node.host}`);
    const [here, there] = node.host === 'ma' ? [ha, hb] : [hb, ha];
    expect(ended.status).toBe(node.host === 'ma' ? 'done' : 'failed');
    expect(String(await inNode(here, 1, 'sha256sum', '/root/blob')).split(' ')[0]).toBe(sum);
    expect(await lxcNames(there)).not.toContain(container);
    expect(String((await there.exec('ls', [`${there.dir}/state/mnt/nodes/knarr-clusters`], { reject: false })).stdout)).not.toContain(container);
  }, 180_000);
});
