import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterRecord } from '../../src/core/cluster.js';
import { ClusterRepo, SubnetReleased } from '../../src/state/clusters.js';
import { fleetKeys } from '../../src/state/keys.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { uniqueName } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('etcd', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');
const NETWORK = '10.250.0.0/16';

const record = (user: string, name: string, subnet: string): ClusterRecord => {
  const now = new Date().toISOString();
  return {
    id: 1,
    name,
    user,
    status: 'creating',
    image: 'base',
    pool: 'p',
    host: 'h1',
    subnet,
    memory: 0,
    cpu: 0,
    nodes: [],
    op: 'op-000001',
    createdAt: now,
    updatedAt: now,
  };
};

describe.skipIf(!run)('cluster allocations in etcd', () => {
  let etcd: EtcdInstance;
  let store: Store;
  beforeAll(async () => {
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
  });
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
  });

  it('users racing for subnets each get their own /24; one user racing itself gets one', async () => {
    const repo = new ClusterRepo(store, uniqueName('f'));
    const users = ['a', 'b', 'c', 'd', 'e', 'f'];
    const subnets = await Promise.all(users.map((u) => repo.ensureSubnet(NETWORK, u)));
    expect(new Set(subnets).size).toBe(users.length);
    const again = await Promise.all(Array.from({ length: 5 }, () => repo.ensureSubnet(NETWORK, 'g')));
    expect(new Set(again).size).toBe(1);
    expect(await repo.ensureSubnet(NETWORK, 'a')).toBe(subnets[0]);
  });

  it('containers racing for addresses in one subnet never share one, and a resumed request gets the same ones', async () => {
    const repo = new ClusterRepo(store, uniqueName('f'));
    const subnet = await repo.ensureSubnet(NETWORK, 'alice');
    const batches = Array.from({ length: 6 }, (_, b) => Array.from({ length: 4 }, (_, i) => `alice-${b}-${i}`));
    const taken = await Promise.all(batches.map((names) => repo.ensureAddresses(subnet, 'alice', names)));
    const ips = batches.flatMap((names, b) => names.map((n) => taken[b]!.get(n)!));
    expect(new Set(ips).size).toBe(24);
    expect(ips.every((ip) => ip.startsWith(subnet.replace('.0/24', '.')) && !ip.endsWith('.1'))).toBe(true);
    const resumed = await repo.ensureAddresses(subnet, 'alice', batches[0]!);
    expect(batches[0]!.map((n) => resumed.get(n))).toEqual(batches[0]!.map((n) => taken[0]!.get(n)));
    await repo.releaseAddresses('alice', (c) => c.startsWith('alice-0-'));
    expect((await repo.addressHolders('alice')).sort()).toEqual(batches.slice(1).flat().sort());
  });

  it('a subnet is given back only when its user has no cluster, and a create that finds it gone is told so', async () => {
    const fleet = uniqueName('f');
    const repo = new ClusterRepo(store, fleet);
    const subnet = await repo.ensureSubnet(NETWORK, 'bob');
    // A new cluster's record goes in with its addresses, and holds the subnet.
    const ips = await repo.ensureAddresses(subnet, 'bob', ['bob-1-0'], () => record('bob', 'lab', subnet));
    expect(ips.size).toBe(1);
    expect(await repo.get('bob', 'lab')).not.toBeNull();
    await repo.releaseSubnetIfUnused('bob');
    expect(await store.get(fleetKeys(fleet).userSubnet('bob'))).toBe(subnet);
    await repo.remove('bob', 'lab');
    await repo.releaseSubnetIfUnused('bob');
    expect(await store.get(fleetKeys(fleet).userSubnet('bob'))).toBeNull();
    expect(await store.get(fleetKeys(fleet).subnet(subnet))).toBeNull();
    // A create that took its subnet before the release cannot write its record into it.
    await expect(repo.ensureAddresses(subnet, 'bob', ['bob-2-0'], () => record('bob', 'lab2', subnet))).rejects.toBeInstanceOf(SubnetReleased);
    expect(await repo.get('bob', 'lab2')).toBeNull();
  });

  it('a second record under the same name is refused with the addresses it would have taken', async () => {
    const repo = new ClusterRepo(store, uniqueName('f'));
    const subnet = await repo.ensureSubnet(NETWORK, 'carol');
    await repo.ensureAddresses(subnet, 'carol', ['carol-1-0'], () => record('carol', 'lab', subnet));
    await expect(repo.ensureAddresses(subnet, 'carol', ['carol-2-0'], () => record('carol', 'lab', subnet))).rejects.toThrow(/carol\/lab already exists/);
    expect(await repo.addressHolders('carol')).toEqual(['carol-1-0']);
    expect(await repo.nextId()).toBeLessThan(await repo.nextId());
  });
});
