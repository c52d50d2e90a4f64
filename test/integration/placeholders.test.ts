import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterRecord } from '../../src/core/cluster.js';
import { placeNodes, type NodePlacementRequest } from '../../src/core/cluster-placement.js';
import { ConflictError } from '../../src/core/errors.js';
import type { HostRecord } from '../../src/core/hosts.js';
import { collectPlaceholders } from '../../src/commands/cluster/collector.js';
import { ClusterRepo } from '../../src/state/clusters.js';
import { HostRepo } from '../../src/state/hosts.js';
import { OpRepo } from '../../src/state/ops.js';
import { PlaceholderRepo, type HoldRequest } from '../../src/state/placeholders.js';
import { fleetKeys } from '../../src/state/keys.js';
import { connectEtcd, readOnlyStore, type Store } from '../../src/state/store.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('placeholders', haveTools('etcd'), 'etcd is not installed');
const GiB = 1024 ** 3;
const fleet = 'holds';

const hostRecord = (name: string, freeMemory: number): HostRecord => ({
  name,
  address: `http://${name}:7946`,
  dockerEndpoint: 'unix:///var/run/docker.sock',
  tags: [],
  capacity: { cpu: 8000, memory: 8 * GiB },
  load: { runningJobs: 0, freeMemory },
  state: 'ok',
  joinedAt: '',
  updatedAt: '',
});

const request = (
  cluster: string,
  size: number,
  over: Partial<NodePlacementRequest> = {},
): [HoldRequest, (v: Parameters<typeof placeNodes>[0]) => ReturnType<typeof placeNodes>] => {
  const containers = Array.from({ length: size }, (_, i) => `${cluster.replace('/', '-')}-${i}`);
  const place: NodePlacementRequest = { cluster, size, cpu: 0, memory: GiB, strategy: 'pack', tags: [], ...over };
  return [{ cluster, containers, cpu: 0, memory: GiB }, (views) => placeNodes(views, place)];
};

/** Memory held on each host by placeholders. */
const heldOn = async (repo: PlaceholderRepo) => {
  const by: Record<string, number> = {};
  for (const p of await repo.list()) by[p.host] = (by[p.host] ?? 0) + p.memory;
  return by;
};

describe.skipIf(!run)('placeholders hold room for cluster nodes (real etcd)', () => {
  let etcd: EtcdInstance;
  let a: Store;
  let b: Store;
  beforeAll(async () => {
    etcd = await startEtcd();
    [a, b] = await Promise.all([connectEtcd([etcd.url]), connectEtcd([etcd.url])]);
    const hosts = new HostRepo(a, fleet);
    const lease = await a.grantLease(120);
    // small has room for two 1 GiB nodes, so pack (the fullest host that fits) goes there first.
    for (const h of [hostRecord('small', 2.5 * GiB), hostRecord('big', 8 * GiB)]) {
      await hosts.put(h);
      await hosts.markAlive(h.name, lease, {});
    }
  }, 30_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await etcd?.stop();
  });

  it('two concurrent creates that together exceed a host never both land on it (20 rounds)', async () => {
    const [ra, rb] = [new PlaceholderRepo(a, fleet), new PlaceholderRepo(b, fleet)];
    for (let round = 0; round < 20; round++) {
      const [one, two] = await Promise.all([ra.hold(`op-a${round}`, ...request('u/one', 2)), rb.hold(`op-b${round}`, ...request('u/two', 2))]);
      const held = await heldOn(ra);
      expect(held.small, `round ${round}: ${JSON.stringify(held)}`).toBeLessThanOrEqual(2 * GiB);
      // One took small whole, the other went elsewhere.
      expect([one.hosts, two.hosts].map((h) => h.join(',')).sort(), `round ${round}`).toEqual(['big,big', 'small,small']);
      await ra.release(`op-a${round}`);
      await rb.release(`op-b${round}`);
      expect(await ra.list()).toEqual([]);
    }
  }, 60_000);

  it('of two concurrent creates pinned to a host with room for one, the other is refused naming the host and why (20 rounds)', async () => {
    const [ra, rb] = [new PlaceholderRepo(a, fleet), new PlaceholderRepo(b, fleet)];
    for (let round = 0; round < 20; round++) {
      const results = await Promise.allSettled([
        ra.hold(`op-pa${round}`, ...request('u/one', 2, { host: 'small' })),
        rb.hold(`op-pb${round}`, ...request('u/two', 2, { host: 'small' })),
      ]);
      const ok = results.filter((r) => r.status === 'fulfilled');
      const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
      expect(ok, `round ${round}`).toHaveLength(1);
      expect(refused[0]).toBeInstanceOf(ConflictError);
      expect(refused[0]!.message).toMatch(
        /^cannot place cluster u\/(one|two): pinned host small cannot take node 0 of u\/(one|two): not enough memory \(\d+ bytes free, 1073741824 asked\)$/,
      );
      expect((await heldOn(ra)).small).toBe(2 * GiB);
      await ra.release(`op-pa${round}`);
      await rb.release(`op-pb${round}`);
    }
  }, 60_000);

  it('gives a resumed operation the placeholders it holds; counts a node once when its record and placeholder name one host', async () => {
    const repo = new PlaceholderRepo(a, fleet);
    const first = await repo.hold('op-r', ...request('u/r', 2));
    expect(first).toMatchObject({ hosts: ['small', 'small'], resumed: false });
    // Another placement meanwhile goes around it; the resumed one is not placed again.
    const other = await repo.hold('op-s', ...request('u/s', 1));
    expect(other.hosts).toEqual(['big']);
    const again = await repo.hold('op-r', ...request('u/r', 2));
    expect(again).toMatchObject({ hosts: ['small', 'small'], resumed: true });
    expect(again.placeholders.map((p) => p.container)).toEqual(['u-r-0', 'u-r-1']);

    // Node 0 is in the record on small now, its placeholder still held: its room counts once.
    const usedOnSmall = async () => (await repo.views()).find((v) => v.name === 'small')!.usedMemory;
    const before = await usedOnSmall();
    const node = { index: 0, container: 'u-r-0', hostname: 'host-0', ip: '10.0.0.2', host: 'small', volume: 'v' };
    await new ClusterRepo(a, fleet).put({ name: 'r', user: 'u', status: 'creating', memory: GiB, cpu: 0, nodes: [node] } as unknown as ClusterRecord);
    expect(await usedOnSmall()).toBe(before);
    // Released (the node runs): its room is in the memory the host reports in use from then on.
    expect(await repo.releaseNode('op-r', 'u-r-0')).toBe(1);
    expect(await usedOnSmall()).toBe(before - GiB);
    expect(await repo.release('op-r')).toBe(1);
    expect(await usedOnSmall()).toBe(before - 2 * GiB);
    await repo.release('op-s');
    await new ClusterRepo(a, fleet).remove('u', 'r');
  });

  it("an operation's placeholders go in one write (each write is an fsync in etcd, at the end of every create)", async () => {
    const repo = new PlaceholderRepo(a, fleet);
    await repo.hold('op-many', ...request('u/many', 4, { strategy: 'spread' }));
    expect((await repo.list()).filter((p) => p.op === 'op-many')).toHaveLength(4);
    // A probe key's revision before and after: the store's revision moves once per write.
    const probe = async () => {
      await a.put('/knarr-test/probe', String(Date.now()));
      return BigInt((await a.getVersioned('/knarr-test/probe'))!.modRevision);
    };
    const before = await probe();
    expect(await repo.release('op-many')).toBe(4);
    expect((await probe()) - before).toBe(2n);
    expect(await repo.list()).toEqual([]);
  });

  it('previews a hold under --dry-run with nothing locked or written, and refuses as hold does', async () => {
    const dry = new PlaceholderRepo(readOnlyStore(a), fleet);
    const seen = await dry.preview('op-d', ...request('u/d', 2));
    expect(seen).toMatchObject({ hosts: ['small', 'small'], resumed: false });
    expect(seen.placeholders.map((p) => `${p.host} ${p.container} ${p.memory}`)).toEqual([`small u-d-0 ${GiB}`, `small u-d-1 ${GiB}`]);
    await expect(dry.preview('op-d', ...request('u/d', 3, { host: 'small' }))).rejects.toThrow(
      /^cannot place cluster u\/d: pinned host small cannot take node 2/,
    );
    await expect(dry.hold('op-d', ...request('u/d', 1))).rejects.toThrow(/dry-run|take a lease/);
    expect(await new PlaceholderRepo(a, fleet).list()).toEqual([]);
    expect(await a.get(fleetKeys(fleet).placementLock)).toBeNull();
  });

  it('waits for the placement lock, and says who holds it when it stays taken', async () => {
    const keys = fleetKeys(fleet);
    await a.put(keys.placementLock, JSON.stringify({ op: 'op-stuck' }));
    const quick = new PlaceholderRepo(a, fleet, 500);
    await expect(quick.hold('op-w', ...request('u/w', 1))).rejects.toThrow(/placement lock stayed taken for 1 s \(held by \{"op":"op-stuck"\}\)/);
    // Let go while a hold waits: the hold goes through.
    const waiting = new PlaceholderRepo(a, fleet).hold('op-w', ...request('u/w', 1));
    setTimeout(() => void a.delete(keys.placementLock), 300);
    expect((await waiting).hosts).toHaveLength(1);
    expect(await a.get(keys.placementLock)).toBeNull();
    await new PlaceholderRepo(a, fleet).release('op-w');
    // A holder that died (its lease no longer renewed) lets go when the lease lapses.
    const dead = await b.grantLease(2);
    await b.put(keys.placementLock, JSON.stringify({ op: 'op-dead' }), dead);
    const started = Date.now();
    expect((await new PlaceholderRepo(a, fleet).hold('op-x', ...request('u/x', 1))).hosts).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThan(1000);
    await new PlaceholderRepo(a, fleet).release('op-x');
  }, 30_000);

  it("the collector removes placeholders of an ended operation at once, of a vanished one on a later pass, and never a live one's", async () => {
    const ops = new OpRepo(a, fleet);
    const live = await ops.submit('cluster.create', {}, 'small');
    const ended = await ops.submit('cluster.create', {}, 'small');
    await ops.update(ended.id, (o) => ({ ...o, status: 'failed', endedAt: new Date().toISOString() }));
    const repo = new PlaceholderRepo(a, fleet);
    for (const [op, c] of [
      [live.id, 'u/live'],
      [ended.id, 'u/ended'],
      ['op-999999', 'u/gone'],
    ] as const)
      await repo.hold(op, ...request(c, 1));
    let clock = 1_000_000;
    const pass = collectPlaceholders(a, fleet, () => clock);
    expect(await pass()).toEqual([expect.stringMatching(new RegExp(`^placeholder \\w+/${ended.id}/u-ended-0$`))]);
    clock += 5_000;
    expect(await pass()).toEqual([]);
    clock += 6_000;
    expect(await pass()).toEqual([expect.stringMatching(/^placeholder \w+\/op-999999\/u-gone-0$/)]);
    expect((await repo.list()).map((p) => p.op)).toEqual([live.id]);
    await ops.update(live.id, (o) => ({ ...o, status: 'done', endedAt: new Date().toISOString() }));
    expect(await pass()).toHaveLength(1);
    expect(await repo.list()).toEqual([]);
  });
});
