import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetKeys } from '../../src/state/keys.js';
import { OpRepo } from '../../src/state/ops.js';
import { PlaceholderRepo } from '../../src/state/placeholders.js';
import { eventually } from '../harness/eventually.js';
import { lxcFleet, type LxcFleet } from '../harness/lxc-fleet.js';
import { haveNetns, type NetHost } from '../harness/netns.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'a cluster over three hosts',
  haveNetns() && haveTools('lxc-start', 'lxc-attach', 'bridge', 'nft', 'etcd'),
  'needs root, iproute2, nftables, lxc, dockerd, busybox-static and etcd',
);
const KNARR = resolve('bin/knarr');
const BRIDGE = 'kmhbr0';

interface Node {
  index: number;
  hostname: string;
  ip: string;
  host: string;
  container: string;
  state: string;
}

/**
 * Three netns hosts, each with its agent (sharing one data directory, as an NFS mount would), a dir pool
 * and real LXC: one cluster's nodes are placed over the three, reach each other by name through the
 * agents' VXLAN, share /nfs, and stop, start, suspend and go as one cluster.
 */
describe.skipIf(!run)('a cluster whose nodes are on three hosts (real LXC on netns hosts)', () => {
  let f: LxcFleet;
  let hosts: NetHost[] = [];
  const k = (h: NetHost, ...argv: string[]) => f.k(h, ...argv);
  const ok = (h: NetHost, ...argv: string[]) => f.ok(h, ...argv);
  const byName = (name: string) => f.host(name);
  /** Every container of the world's hosts, and every node volume left on their pools. */
  const leftovers = async () => {
    const found: string[] = [];
    for (const h of hosts) {
      for (const c of await f.lxcNames(h)) found.push(`${h.name} ${c}`);
      const volumes = `${h.dir}/state/mnt/nodes/knarr-clusters`;
      for (const v of existsSync(volumes) ? readdirSync(volumes) : []) found.push(`${h.name} volume ${v}`);
    }
    return found.sort();
  };
  const show = async (name: string) => JSON.parse(await ok(hosts[0]!, '--json', 'cluster', 'show', name)) as { status: string; nodes: Node[] };
  /** Runs cmd in a node, on the host the node is on. */
  const inNode = (n: Node, ...cmd: string[]) => k(byName(n.host), 'cluster', 'exec', 'lab', String(n.index), '--', ...cmd);

  beforeAll(async () => {
    f = await lxcFleet({ prefix: 'knarr-mhc-', fleet: 'mhc', hosts: ['ma', 'mb', 'mc'], bridge: BRIDGE, share: true });
    hosts = f.hosts;
  }, 300_000);

  afterAll(async () => {
    if (hosts[0]) await k(hosts[0], 'cluster', 'delete', 'lab');
    await f?.teardown();
  }, 180_000);

  it('six nodes spread over the three hosts, two on each, each host running its own', async () => {
    const t = Date.now();
    await ok(hosts[0]!, 'cluster', 'create', 'lab', '--size', '6', '--spread');
    console.info(`6 nodes over 3 hosts created in ${Date.now() - t} ms`);
    const c = await show('lab');
    expect(c.status).toBe('running');
    const per = new Map<string, number>();
    for (const n of c.nodes) per.set(n.host, (per.get(n.host) ?? 0) + 1);
    expect([...per.entries()].sort()).toEqual([
      ['ma', 2],
      ['mb', 2],
      ['mc', 2],
    ]);
    for (const n of c.nodes) expect(n.state, `${n.hostname} on ${n.host}`).toBe('RUNNING');
    // Each host's LXC has its own two nodes, and no other.
    for (const h of hosts) {
      const here = await f.lxcNames(h);
      expect(here, h.name).toEqual(
        c.nodes
          .filter((n) => n.host === h.name)
          .map((n) => n.container)
          .sort(),
      );
    }
  }, 300_000);

  it('every node pings every other by name, and /etc/hosts lists all six', async () => {
    const c = await show('lab');
    for (const n of c.nodes) {
      const hostsFile = String((await inNode(n, 'cat', '/etc/hosts')).stdout);
      for (const m of c.nodes) expect(hostsFile, `${n.hostname}'s /etc/hosts`).toMatch(new RegExp(`^${m.ip.replace(/\./g, '\\.')} ${m.hostname}\\b`, 'm'));
    }
    const t = Date.now();
    for (const n of c.nodes)
      for (const m of c.nodes.filter((x) => x !== n))
        await eventually(
          async () =>
            expect((await inNode(n, 'ping', '-c', '1', '-W', '1', m.hostname)).exitCode, `${n.hostname}@${n.host} -> ${m.hostname}@${m.host}`).toBe(0),
          15_000,
          200,
        );
    console.info(`30 pings by name across 3 hosts in ${Date.now() - t} ms`);
  }, 300_000);

  it('a file a node on the first host writes to /nfs is read by a node on the third', async () => {
    const c = await show('lab');
    const a = c.nodes.find((n) => n.host === 'ma')!;
    const z = c.nodes.find((n) => n.host === 'mc')!;
    expect((await inNode(a, 'sh', '-c', `echo written-on-${a.hostname} > /nfs/hello`)).exitCode).toBe(0);
    expect(String((await inNode(z, 'cat', '/nfs/hello')).stdout).trim()).toBe(`written-on-${a.hostname}`);
    // It is the fleet's shared directory, as every host mounts it.
    expect(readFileSync(`${f.share}/knarr-users/alice/data/hello`, 'utf8').trim()).toBe(`written-on-${a.hostname}`);
  }, 120_000);

  it("cluster exec on a node of another host goes through that host's agent: output, stdin and exit status come back", async () => {
    const c = await show('lab');
    const far = c.nodes.find((n) => n.host === 'mb')!;
    const r = await k(hosts[0]!, 'cluster', 'exec', 'lab', String(far.index), '--', 'hostname');
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stdout).trim()).toBe(far.hostname);
    const err = await k(hosts[0]!, 'cluster', 'exec', 'lab', String(far.index), '--', 'sh', '-c', 'echo oops >&2; exit 7');
    expect(err.exitCode).toBe(7);
    expect(String(err.stderr)).toContain('oops');
    const piped = await hosts[0]!.exec(KNARR, ['--state-dir', `${hosts[0]!.dir}/state`, 'cluster', 'exec', '-i', 'lab', String(far.index), '--', 'wc', '-c'], {
      env: { ...hosts[0]!.dockerd.env, ...f.env },
      input: 'x'.repeat(100_000),
      reject: false,
    });
    expect(String(piped.stdout).trim()).toBe('100000');
  }, 60_000);

  it('suspend and resume of the whole cluster freeze and thaw the nodes on every host', async () => {
    await ok(hosts[0]!, 'cluster', 'suspend', 'lab');
    let c = await show('lab');
    for (const h of hosts)
      for (const n of c.nodes.filter((x) => x.host === h.name))
        expect(String((await h.exec('lxc-info', ['-P', `${h.dir}/state/lxc`, '-n', n.container, '-s'])).stdout), n.container).toContain('FROZEN');
    await ok(hosts[0]!, 'cluster', 'resume', 'lab');
    c = await show('lab');
    for (const n of c.nodes) expect(n.state).toBe('RUNNING');
    for (const h of hosts)
      for (const n of c.nodes.filter((x) => x.host === h.name))
        expect(String((await h.exec('lxc-info', ['-P', `${h.dir}/state/lxc`, '-n', n.container, '-s'])).stdout), n.container).toContain('RUNNING');
  }, 180_000);

  it('two creates at once that together do not fit on one host: one is refused, never both on it; its placeholders go', async () => {
    // Each host has 2000m of cpu (2 cores); lab's two nodes there count 100m each: room for one 1-cpu node more, not two.
    const [p, q] = await Promise.all(['p', 'q'].map((n) => k(hosts[1]!, 'cluster', 'create', n, '--size', '1', '--cpus', '1', '--host', 'mb')));
    const codes = [p!.exitCode, q!.exitCode].sort();
    expect(codes[0]).toBe(0);
    expect(codes[1]).not.toBe(0);
    expect(String((p!.exitCode === 0 ? q! : p!).stderr)).toMatch(/cannot place cluster alice\/[pq]: .*mb.*not enough cpu/);
    const list = (JSON.parse(await ok(hosts[0]!, '--json', 'cluster', 'list')) as { name: string }[]).map((c) => c.name).sort();
    expect(list).toEqual(['lab', p!.exitCode === 0 ? 'p' : 'q']);
    expect(await new PlaceholderRepo(f.store, 'mhc').list()).toEqual([]);
    await ok(hosts[1]!, 'cluster', 'delete', p!.exitCode === 0 ? 'p' : 'q');
  }, 180_000);

  it('scale out places the new nodes over the hosts as the create did; scale in removes nodes on every host; /etc/hosts follows', async () => {
    await ok(hosts[2]!, 'cluster', 'scale', 'lab', '--size', '9');
    let c = await show('lab');
    expect(c.nodes.map((n) => n.state)).toEqual(Array(9).fill('RUNNING'));
    const count = (host: string) => c.nodes.filter((n) => n.host === host).length;
    expect(['ma', 'mb', 'mc'].map(count)).toEqual([3, 3, 3]);
    const last = c.nodes[8]!;
    for (const n of c.nodes.filter((x) => x.host !== last.host).slice(0, 2))
      await eventually(async () => expect((await inNode(n, 'ping', '-c', '1', '-W', '1', last.hostname)).exitCode).toBe(0), 15_000, 200);
    await ok(hosts[0]!, 'cluster', 'scale', 'lab', '--size', '4');
    c = await show('lab');
    expect(c.nodes.map((n) => n.index)).toEqual([0, 1, 2, 3]);
    expect(await leftovers()).toEqual(c.nodes.flatMap((n) => [`${n.host} ${n.container}`, `${n.host} volume ${n.container}`]).sort());
    for (const n of c.nodes) {
      const listed = String((await inNode(n, 'cat', '/etc/hosts')).stdout);
      expect(listed, n.hostname).toContain(' host-3 ');
      expect(listed, n.hostname).not.toContain(' host-4 ');
    }
    await ok(hosts[0]!, 'cluster', 'scale', 'lab', '--size', '6');
    expect((await show('lab')).nodes.map((n) => n.state)).toEqual(Array(6).fill('RUNNING'));
  }, 240_000);

  it("clone copies each node's volume on its own host and starts the copy there", async () => {
    const src = await show('lab');
    const far = src.nodes.find((n) => n.host === 'mc')!;
    expect((await inNode(far, 'sh', '-c', 'echo kept-in-the-volume > /root/mark')).exitCode).toBe(0);
    await ok(hosts[0]!, 'cluster', 'clone', 'lab', 'lab2');
    const copy = JSON.parse(await ok(hosts[0]!, '--json', 'cluster', 'show', 'lab2')) as { nodes: Node[] };
    expect(copy.nodes.map((n) => [n.index, n.host, n.state])).toEqual(src.nodes.map((n) => [n.index, n.host, 'RUNNING']));
    const twin = copy.nodes.find((n) => n.index === far.index)!;
    const read = await k(byName(twin.host), 'cluster', 'exec', 'lab2', String(twin.index), '--', 'cat', '/root/mark');
    expect(String(read.stdout).trim()).toBe('kept-in-the-volume');
    await ok(hosts[0]!, 'cluster', 'delete', 'lab2');
    expect((await leftovers()).filter((l) => !src.nodes.some((n) => l.endsWith(n.container)))).toEqual([]);
  }, 240_000);

  it("image save of a node on another host is made there, from that node's volume, as an image of that host", async () => {
    const far = (await show('lab')).nodes.find((n) => n.host === 'mc')!;
    expect((await inNode(far, 'sh', '-c', 'echo in-the-image > /root/saved')).exitCode).toBe(0);
    await ok(hosts[0]!, 'image', 'save', 'lab', String(far.index), 'snap');
    const images = JSON.parse(await ok(byName('mc'), '--json', 'image', 'list')) as { name: string; host: string }[];
    expect(images.filter((i) => i.name === 'snap').map((i) => i.host)).toEqual(['mc']);
    await ok(byName('mc'), 'cluster', 'create', 'fromsnap', '--size', '1', '--image', 'snap');
    expect(String((await k(byName('mc'), 'cluster', 'exec', 'fromsnap', '0', '--', 'cat', '/root/saved')).stdout).trim()).toBe('in-the-image');
    await ok(byName('mc'), 'cluster', 'delete', 'fromsnap');
  }, 180_000);

  it('stop and start act on every host; delete leaves no node, volume or address on any', async () => {
    await ok(hosts[0]!, 'cluster', 'stop', 'lab');
    let c = await show('lab');
    expect(c.status).toBe('stopped');
    for (const h of hosts)
      for (const n of c.nodes.filter((x) => x.host === h.name))
        expect(String((await h.exec('lxc-info', ['-P', `${h.dir}/state/lxc`, '-n', n.container, '-s'])).stdout), n.container).toContain('STOPPED');
    await ok(hosts[0]!, 'cluster', 'start', 'lab');
    c = await show('lab');
    expect(c.status).toBe('running');
    await eventually(async () => expect((await inNode(c.nodes[0]!, 'ping', '-c', '1', '-W', '1', c.nodes[5]!.hostname)).exitCode).toBe(0), 15_000, 200);
    await ok(hosts[0]!, 'cluster', 'delete', 'lab');
    for (const h of hosts) {
      expect(await f.lxcNames(h), h.name).toEqual([]);
      expect(String((await h.exec('ls', [`${h.dir}/state`])).stdout)).toBeDefined();
    }
    const list = JSON.parse(await ok(hosts[1]!, '--json', 'cluster', 'list')) as unknown[];
    expect(list).toEqual([]);
  }, 240_000);
  /** A create of six nodes over the three hosts, its parent's agent (on ma) killed once the other hosts' parts are under way. */
  const createAndKillParent = async (name: string) => {
    const r = await k(hosts[0]!, '--json', 'cluster', 'create', name, '--size', '6', '--spread', '--detach');
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const op = (JSON.parse(String(r.stdout)) as { id: string }).id;
    // Watched in etcd, not through the CLI: the parts are quick, and the kill must come while the parent waits for them.
    const ops = new OpRepo(f.store, 'mhc');
    await eventually(
      async () => {
        const o = await ops.get(op);
        expect(o?.children.length).toBeGreaterThanOrEqual(2);
        expect(o?.status).toBe('running');
      },
      20_000,
      5,
    );
    await f.killAgent(hosts[0]!);
    // Killed before it ended: what the tests below look at is a create cut short.
    expect((await ops.get(op))?.status).toBe('running');
    return op;
  };

  it("the parent's agent killed mid-create: when it starts again the create ends complete, with no orphan on any host", async () => {
    const op = await createAndKillParent('crash');
    f.startAgent(hosts[0]!);
    const waited = await k(hosts[1]!, '--json', 'op', 'wait', op, '--timeout', '90');
    expect(waited.exitCode, String(waited.stderr)).toBe(0);
    // Resumed: the first runner died with it under way.
    expect(JSON.parse(String(waited.stdout))).toMatchObject({ status: 'done', attempts: 2 });
    const c = await show('crash');
    expect(c.status).toBe('running');
    expect(c.nodes.map((n) => n.state)).toEqual(Array(6).fill('RUNNING'));
    expect(await leftovers()).toEqual(c.nodes.flatMap((n) => [`${n.host} ${n.container}`, `${n.host} volume ${n.container}`]).sort());
    await ok(hosts[0]!, 'cluster', 'delete', 'crash');
    expect(await leftovers()).toEqual([]);
  }, 240_000);

  it("the parent's agent killed mid-create, then the create cancelled: nothing of it is left on any host", async () => {
    await eventually(async () => expect(await f.upHosts()).toEqual(['ma', 'mb', 'mc']), 30_000);
    const op = await createAndKillParent('gone');
    // Once the dead agent's lease lapses, ma has no runner: the CLI there undoes it, and the other hosts' agents undo their parts.
    await eventually(async () => expect(await f.upHosts()).toEqual(['mb', 'mc']), 30_000);
    const cancelled = await k(hosts[0]!, '--json', 'op', 'cancel', op);
    expect(cancelled.exitCode, String(cancelled.stderr)).toBe(0);
    const end = JSON.parse(String(cancelled.stdout)) as { status: string; error: string | null };
    expect(end.status, end.error ?? '').toBe('cancelled');
    expect(await leftovers()).toEqual([]);
    expect((JSON.parse(await ok(hosts[1]!, '--json', 'cluster', 'list')) as { name: string }[]).map((c) => c.name)).not.toContain('gone');
    expect(await f.store.list(fleetKeys('mhc').userAddresses('alice'))).toEqual([]);
    expect(await new PlaceholderRepo(f.store, 'mhc').list()).toEqual([]);
    f.startAgent(hosts[0]!);
  }, 240_000);
});
