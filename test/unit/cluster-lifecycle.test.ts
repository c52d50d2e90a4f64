import { describe, expect, it } from 'vitest';
import { limitsOf, nodeLimits, parseCpus, shownStatus, updatedLimits, withLimits, type ClusterRecord } from '../../src/core/cluster.js';
import { clusterEventOf } from '../../src/core/events.js';
import { newOp } from '../../src/core/ops.js';
import { cgroupLimits, lxcConfig } from '../../src/host/lxc.js';
import { cloneArgs } from '../../src/commands/cluster/ops/clone.js';
import { updateArgs } from '../../src/commands/cluster/ops/update.js';
import { nodeRefArgs, targetNodes } from '../../src/commands/cluster/ops/shared.js';

const node = (index: number, extra: Partial<ClusterRecord['nodes'][number]> = {}) => ({
  index,
  container: `ann-4-${index}`,
  hostname: `host-${index}`,
  ip: `10.9.1.${index + 2}`,
  host: 'h1',
  volume: `knarr-clusters/ann-4-${index}`,
  ...extra,
});
const cluster = (nodes = [node(0), node(1), node(2)]): ClusterRecord => ({
  id: 4,
  name: 'lab',
  user: 'ann',
  status: 'running',
  image: 'base',
  pool: 'nodes',
  host: 'h1',
  subnet: '10.9.1.0/24',
  memory: 128 << 20,
  cpu: 0,
  nodes,
  op: 'op-000001',
  createdAt: '',
  updatedAt: '',
});

describe('a node lifecycle: limits, frozen nodes, arguments', () => {
  it("a cluster-wide update replaces each node's own limit of that kind; a node's update is its own", () => {
    const c = cluster([node(0, { memory: 64 << 20, cpu: 250 }), node(1)]);
    const all = withLimits(c, updatedLimits(c, { memory: 256 << 20 }));
    expect(all.nodes.map((n) => nodeLimits(all, n))).toEqual([
      { memory: 256 << 20, cpu: 250 },
      { memory: 256 << 20, cpu: 0 },
    ]);
    const one = withLimits(c, updatedLimits(c, { node: 1, cpu: 2000 }));
    expect(one.nodes.map((n) => nodeLimits(one, n))).toEqual([
      { memory: 64 << 20, cpu: 250 },
      { memory: 128 << 20, cpu: 2000 },
    ]);
    // What undo puts back is exactly what was there.
    expect(withLimits(one, limitsOf(c))).toEqual(c);
  });

  it('cgroup keys: a config leaves out a limit that is none; live, none is written as no limit', () => {
    expect(cgroupLimits(0, 0, false, false)).toEqual([]);
    expect(cgroupLimits(1 << 20, 500, false, true)).toEqual([
      ['memory.limit_in_bytes', '1048576'],
      ['cpu.cfs_period_us', '100000'],
      ['cpu.cfs_quota_us', '50000'],
    ]);
    expect(cgroupLimits(0, 0, false, true)).toEqual([
      ['memory.limit_in_bytes', '-1'],
      ['cpu.cfs_period_us', '100000'],
      ['cpu.cfs_quota_us', '-1'],
    ]);
    expect(cgroupLimits(0, 0, true, true)).toEqual([
      ['memory.max', 'max'],
      ['cpu.max', 'max 100000'],
    ]);
    const config = lxcConfig({
      name: 'n',
      hostname: 'host-0',
      image: '/i',
      upper: '/u',
      bridge: 'br',
      address: '10.0.0.2/24',
      broadcast: '10.0.0.255',
      gateway: '10.0.0.1',
      mounts: [],
      memoryBytes: 1 << 20,
      cpuMillis: 1500,
      cgroup2: true,
    });
    expect(config).toContain('lxc.cgroup2.memory.max = 1048576\nlxc.cgroup2.cpu.max = 150000 100000\n');
  });

  it('list says suspended when every node is frozen, how many otherwise', () => {
    expect(shownStatus(cluster())).toBe('running');
    expect(shownStatus(cluster([node(0, { frozen: true }), node(1)]))).toBe('running, 1/2 frozen');
    expect(shownStatus(cluster([node(0, { frozen: true })]))).toBe('suspended');
    expect(shownStatus({ ...cluster([node(0, { frozen: true })]), status: 'stopped' })).toBe('stopped');
  });

  it('cpu amounts, nodes and arguments', () => {
    expect([parseCpus('--cpus', '0.5'), parseCpus('--cpus', '2'), parseCpus('--cpus', '250m')]).toEqual([500, 2000, 250]);
    expect(() => parseCpus('--cpus', 'lots')).toThrow(/--cpus: "lots" is not a cpu amount/);
    expect(() => targetNodes(cluster(), 5)).toThrow(/cluster lab has no node 5 \(its nodes: host-0\.\.host-2\)/);
    expect(targetNodes(cluster(), undefined)).toHaveLength(3);
    const op = (kind: string, args: Record<string, unknown>) => newOp(3, kind, args, 'h1');
    expect(nodeRefArgs(op('cluster.suspend', { user: 'ann', name: 'lab', node: 1 }))).toEqual({ user: 'ann', name: 'lab', node: 1 });
    expect(updateArgs(op('cluster.update', { user: 'ann', name: 'lab', memory: 0 }))).toEqual({ user: 'ann', name: 'lab', memory: 0 });
    expect(() => cloneArgs(op('cluster.clone', { user: 'ann', name: 'lab' }))).toThrow(/clone/);
    const done = { ...op('cluster.suspend', { user: 'ann', name: 'lab', node: 1 }), status: 'done' as const };
    expect(clusterEventOf(done)).toMatchObject({ object: 'ann/lab', event: 'suspended', message: 'node 1, by op-000003' });
    expect(clusterEventOf({ ...done, kind: 'cluster.clone', args: { user: 'ann', name: 'lab', clone: 'lab2' } })).toMatchObject({
      event: 'cloned',
      message: 'to lab2, by op-000003',
    });
  });
});
