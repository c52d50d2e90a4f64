import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetKeys } from '../../src/state/keys.js';
import type { Store } from '../../src/state/store.js';
import { eventually } from '../harness/eventually.js';
import { lxcFleet, type LxcFleet } from '../harness/lxc-fleet.js';
import { haveNetns, type NetHost } from '../harness/netns.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'host evacuate with cluster nodes',
  haveNetns() && haveTools('lxc-start', 'lxc-attach', 'bridge', 'nft', 'etcd'),
  'needs root, iproute2, nftables, lxc, dockerd, busybox-static and etcd',
);
const BRIDGE = 'kevbr0';

interface Node {
  index: number;
  container: string;
  hostname: string;
  ip: string;
  host: string;
}

/** Two netns hosts, each with its agent, a dir pool and real LXC: evacuating one migrates its cluster's nodes to the other. */
describe.skipIf(!run)('host evacuate migrates cluster nodes (real LXC on two netns hosts)', () => {
  let f: LxcFleet;
  let store: Store;
  let ea: NetHost, eb: NetHost;
  const k = (h: NetHost, ...argv: string[]) => f.k(h, ...argv);
  const ok = (h: NetHost, ...argv: string[]) => f.ok(h, ...argv);
  const cluster = async () => JSON.parse(await ok(ea, '--json', 'cluster', 'show', 'lab')) as { host: string; nodes: Node[] };
  const lxcNames = (h: NetHost) => f.lxcNames(h);
  const hostState = async (h: string) => (JSON.parse(await ok(ea, '--json', 'host', 'show', h)) as { state: string }).state;

  beforeAll(async () => {
    // The fleet's shared data directory, as every host mounts it: the cluster's /nfs is there, so its nodes may move one by one.
    f = await lxcFleet({ prefix: 'knarr-evacuate-nodes-', fleet: 'evacuate', hosts: ['ea', 'eb'], bridge: BRIDGE, share: true });
    [ea, eb] = f.hosts as [NetHost, NetHost];
    store = f.store;
    await ok(ea, 'cluster', 'create', 'lab', '--size', '2');
    // And a job on ea (eb drained for a moment so it lands there): one evacuation empties the host of both.
    await ok(ea, 'host', 'drain', 'eb');
    await ok(ea, 'job', 'run', '-d', '--name', 'web', '--network', 'none', ea.dockerd.image, '--', 'sleep', '3600');
    await ok(ea, 'host', 'drain', 'eb', '--undo');
  }, 240_000);

  afterAll(async () => {
    if (eb) await k(eb, 'cluster', 'delete', 'lab');
    await f?.teardown();
  }, 180_000);

  it('plans under --dry-run, then moves the job and every node to the other host (same names and addresses) and empties the host', async () => {
    const before = await cluster();
    expect(before.nodes.map((n) => n.host)).toEqual(['ea', 'ea']);
    const names = before.nodes.map((n) => n.container).sort();
    expect(await lxcNames(ea)).toEqual(names);

    expect((JSON.parse(await ok(ea, '--json', 'job', 'show', 'web')) as { host: string }).host).toBe('ea');
    // Made without the share (/nfs on ea's pool), its two nodes could not move one at a time: refused, nothing changes.
    const key = fleetKeys('evacuate').cluster('alice', 'lab');
    const record = (await store.get(key))!;
    expect(JSON.parse(record).files).toBe('share');
    await store.put(key, JSON.stringify({ ...JSON.parse(record), files: undefined }));
    const split = await k(ea, 'host', 'evacuate', 'ea');
    await store.put(key, record);
    expect(split.exitCode).toBe(4);
    expect(String(split.stderr)).toMatch(/nowhere to move node 0 of cluster alice\/lab \(\S+\) \(cluster alice\/lab keeps \/nfs on ea's pool/);
    expect(await hostState('ea')).toBe('ok');
    const planned = await ok(ea, '--dry-run', 'host', 'evacuate', 'ea');
    expect(planned).toMatch(/^# move job web from ea to eb /m);
    for (const n of before.nodes)
      expect(planned).toMatch(
        new RegExp(`^# migrate node ${n.index} of cluster alice/lab \\(${n.container}\\) to eb: a cluster\\.migrate operation on ea$`, 'm'),
      );
    expect(await cluster()).toEqual(before);
    expect(await hostState('ea')).toBe('ok');

    const t = Date.now();
    const op = JSON.parse(await ok(ea, '--json', 'host', 'evacuate', 'ea')) as {
      status: string;
      children: string[];
      result: {
        moved: { job: string; to: string; state: string }[];
        migrated: { node: number; to: string; op: string }[];
        rehomed: { user: string; cluster: string; host: string }[];
      };
    };
    console.info(`host evacuate of 2 cluster nodes and a job: ${Date.now() - t} ms`);
    expect(op.status).toBe('done');
    expect(op.result.moved).toEqual([{ job: 'web', from: 'ea', to: 'eb', state: 'running' }]);
    expect(op.result.migrated.map((m) => [m.node, m.to]).sort()).toEqual([
      [0, 'eb'],
      [1, 'eb'],
    ]);
    expect(op.children).toHaveLength(2);
    for (const id of op.children)
      expect(JSON.parse(await ok(ea, '--json', 'op', 'show', id))).toMatchObject({ kind: 'cluster.migrate', host: 'ea', status: 'done' });
    expect(op.result.rehomed).toEqual([{ user: 'alice', cluster: 'lab', host: 'eb' }]);

    const after = await cluster();
    expect(after.host).toBe('eb');
    expect(after.nodes.map(({ container, hostname, ip, host }) => ({ container, hostname, ip, host }))).toEqual(
      before.nodes.map(({ container, hostname, ip }) => ({ container, hostname, ip, host: 'eb' })),
    );
    expect(await lxcNames(ea)).toEqual([]);
    await eventually(async () => expect(await ea.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.job=web')).toBe(''));
    expect(await eb.dockerd.docker('ps', '-q', '--filter', 'label=knarr.job=web')).not.toBe('');
    expect(await lxcNames(eb)).toEqual(names);
    expect((await ok(eb, 'cluster', 'exec', 'lab', '1', '--', 'hostname')).trim()).toBe('host-1');
    expect((await k(eb, 'cluster', 'exec', 'lab', '0', '--', 'ping', '-c', '1', '-W', '2', 'host-1')).exitCode).toBe(0);
    expect(await hostState('ea')).toBe('evacuated');

    // Nothing left: a second evacuation migrates nothing; restore lets work land again, and nothing moves back.
    const again = JSON.parse(await ok(ea, '--json', 'host', 'evacuate', 'ea')) as { result: { migrated: unknown[] } };
    expect(again.result.migrated).toEqual([]);
    expect(await ok(ea, 'host', 'restore', 'ea')).toMatch(/host ea takes new work again/);
    expect(await hostState('ea')).toBe('ok');
    expect((await cluster()).nodes.map((n) => n.host)).toEqual(['eb', 'eb']);
  }, 300_000);
});
