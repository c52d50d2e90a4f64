import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../harness/eventually.js';
import { lxcFleet, type LxcFleet } from '../harness/lxc-fleet.js';
import { haveNetns, type NetHost } from '../harness/netns.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'cluster nodes on two hosts, one network',
  haveNetns() && haveTools('lxc-start', 'lxc-attach', 'bridge', 'nft', 'etcd'),
  'needs root, iproute2, nftables, lxc, dockerd, busybox-static and etcd',
);
const BRIDGE = 'kovbr0';

/**
 * Two netns hosts, each with its agent, a dir pool and real LXC nodes: a cluster made on each host
 * for the same user lands on the user's one subnet, and the agents' VXLAN joins the two bridges,
 * so a node on one host reaches a node on the other.
 */
describe.skipIf(!run)("the clusters' network between hosts (real LXC on netns hosts)", () => {
  let f: LxcFleet;
  let ha: NetHost, hb: NetHost;
  const k = (h: NetHost, ...argv: string[]) => f.k(h, ...argv);
  const ok = (h: NetHost, ...argv: string[]) => f.ok(h, ...argv);
  const nodeIp = async (h: NetHost, cluster: string) =>
    (JSON.parse(await ok(h, '--json', 'cluster', 'show', cluster)) as { nodes: { ip: string }[] }).nodes[0]!.ip;

  beforeAll(async () => {
    // No shared directory: a cluster over both hosts is refused (below).
    f = await lxcFleet({ prefix: 'knarr-overlay-', fleet: 'overlay', hosts: ['oa', 'ob'], bridge: BRIDGE });
    [ha, hb] = f.hosts as [NetHost, NetHost];
  }, 240_000);

  afterAll(async () => {
    for (const [h, c] of [
      [ha, 'x'],
      [hb, 'y'],
    ] as const)
      if (h) await k(h, 'cluster', 'delete', c);
    await f?.teardown();
  }, 180_000);

  it('a node of a cluster on one host pings a node of a cluster on the other, both ways, at once', async () => {
    await ok(ha, 'cluster', 'create', 'x', '--size', '1');
    await ok(hb, 'cluster', 'create', 'y', '--size', '1');
    const [x, y] = [await nodeIp(ha, 'x'), await nodeIp(hb, 'y')];
    // The user's one subnet, whichever host the cluster is on.
    expect(x.split('.').slice(0, 3)).toEqual(y.split('.').slice(0, 3));
    const t = Date.now();
    await eventually(async () => expect((await k(ha, 'cluster', 'exec', 'x', '0', '--', 'ping', '-c', '1', '-W', '1', y)).exitCode).toBe(0), 10_000, 200);
    console.info(`node on oa reaches node on ob ${Date.now() - t} ms after both clusters were up`);
    expect((await k(hb, 'cluster', 'exec', 'y', '0', '--', 'ping', '-c', '1', '-W', '1', x)).exitCode).toBe(0);
  }, 180_000);

  it('a cluster over both hosts is refused when the agents have no shared data directory for /nfs; nothing is left of it', async () => {
    const r = await k(ha, 'cluster', 'create', 'z', '--size', '2', '--spread');
    expect(r.exitCode).not.toBe(0);
    expect(String(r.stderr)).toMatch(/over several hosts needs the fleet's shared data directory/);
    expect(String(r.stderr)).toContain('--share DIR');
    const list = JSON.parse(await ok(hb, '--json', 'cluster', 'list')) as { name: string }[];
    expect(list.map((c) => c.name)).not.toContain('z');
    // Each host has the one node of its cluster from before, and nothing more.
    for (const h of [ha, hb]) expect(await f.lxcNames(h), h.name).toHaveLength(1);
  }, 60_000);

  it('the last cluster of a host gone, its bridge goes with the VXLAN device and its guard', async () => {
    for (const [h, c] of [
      [ha, 'x'],
      [hb, 'y'],
    ] as const) {
      await ok(h, 'cluster', 'delete', c);
      expect((await h.exec('ip', ['link', 'show', BRIDGE], { reject: false })).exitCode, h.name).not.toBe(0);
      expect((await h.exec('ip', ['link', 'show', `${BRIDGE}vx`], { reject: false })).exitCode, h.name).not.toBe(0);
      expect(String((await h.exec('nft', ['list', 'tables'])).stdout)).not.toContain(`knarr_${BRIDGE}vx`);
    }
  }, 120_000);
});
