import { rename, rm } from 'node:fs/promises';
import { ConflictError } from '../../../core/errors.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import { pathExists } from '../../../host/mounts.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { nodeVolume } from '../common.js';
import { allocateCluster, removeClusterParts, requireCluster, setting, startNodes, writeHosts, type ClusterRef, type Setting } from './shared.js';
import { hereOnly, isPart, partHosts, runParts, undoParts } from './span.js';
import type { ClusterRecord } from '../../../core/cluster.js';

/** What `knarr cluster clone` wrote into the operation: the source cluster and the new one's name. */
export interface CloneArgs extends ClusterRef {
  clone: string;
}

export function cloneArgs(op: OpRecord): CloneArgs {
  const a = new OpArgs(op);
  return { user: a.string('user'), name: a.string('name'), pool: a.optionalString('pool'), clone: a.string('clone') };
}

const cloneSetting = (r: OpRun) => setting(r, cloneArgs(r.op));

/**
 * A node's volume copied to a new one: a snapshot where the pool's driver takes one (btrfs), else a copy of
 * its writable layer (cp --reflink=auto shares blocks where the filesystem can) into a partial directory
 * renamed into place, so a copy cut short is never taken for a whole one.
 */
async function copyVolume(r: OpRun, s: Setting, from: string, to: string): Promise<'snapshot' | 'copy'> {
  const runner = r.ctx.runner;
  if (s.driver.cloneVolume) {
    await s.driver.cloneVolume(s.pool, from, to, runner);
    return 'snapshot';
  }
  const dst = (await s.driver.ensureVolume(s.pool, to, runner)).path;
  if (await pathExists(`${dst}/delta`)) return 'copy';
  const src = `${(await s.driver.ensureVolume(s.pool, from, runner)).path}/delta`;
  await rm(`${dst}/delta.partial`, { recursive: true, force: true });
  if (await pathExists(src)) await runner.run(['cp', '-a', '--reflink=auto', src, `${dst}/delta.partial`]);
  else await runner.mkdirp(`${dst}/delta.partial`);
  await rename(`${dst}/delta.partial`, `${dst}/delta`);
  return 'copy';
}

/**
 * This host's nodes of the clone: each one's volume copied from its source node (a running one frozen meanwhile,
 * and written down first so an undo thaws it), then the hosts file and the nodes started.
 */
async function cloneHere(r: OpRun, s: Setting<CloneArgs>, src: ClusterRecord, c: ClusterRecord): Promise<'snapshot' | 'copy'> {
  const held = [...((r.op.state.held as string[] | undefined) ?? [])];
  let how: 'snapshot' | 'copy' = 'copy';
  const nodes = hereOnly(r, c.nodes);
  for (const [k, node] of nodes.entries()) {
    await r.checkpoint();
    const from = src.nodes.find((n) => n.index === node.index)!;
    await r.progress(k, nodes.length, `copying ${from.hostname}'s volume`);
    if ((await s.lxc.state(from.container)) === 'RUNNING') {
      if (!held.includes(from.container)) {
        held.push(from.container);
        await r.save({ held });
      }
      await s.lxc.freeze(from.container);
    }
    try {
      how = await copyVolume(r, s, from.volume, nodeVolume(node.container));
    } finally {
      if (held.includes(from.container)) await s.lxc.unfreeze(from.container);
    }
  }
  await writeHosts(s, c);
  await startNodes(r, s, c, nodes, 'starting');
  return how;
}

/**
 * cluster.clone: a new cluster of the same image, limits and size, with its own id, containers, addresses and
 * /etc/hosts, each node's volume a copy of the source node's. A running source node is frozen while its
 * volume is copied (a consistent copy) and thawed at once; the nodes it froze are recorded, so an undo
 * thaws them whatever happened. The clone is started. Undone as a whole, like a create.
 */
export const clusterClone: OpHandler = {
  async run(r) {
    const s = await cloneSetting(r);
    const src = await requireCluster(s);
    const { args } = s;
    if (isPart(r)) {
      // One other host's part: its nodes of the clone the home host recorded.
      const c = await s.repo.get(args.user, args.clone);
      if (!c || c.op !== r.op.parent) throw new ConflictError(`cluster ${args.user}/${args.clone} is not the one ${r.op.parent} is making`);
      return { volumes: await cloneHere(r, s, src, c) };
    }
    if (src.status !== 'running' && src.status !== 'stopped')
      throw new ConflictError(`cannot clone cluster ${src.name}: it is ${src.status}`, { hint: `wait for ${src.op}: knarr op wait ${src.op}` });
    const existing = await s.repo.get(args.user, args.clone);
    // A resumed run finds the record it made; anyone else's is a conflict.
    if (existing && existing.op !== r.op.id) throw new ConflictError(`user ${args.user} already has a cluster ${args.clone}`);
    const now = new Date().toISOString();
    const { id: _id, subnet: _subnet, nodes: _nodes, ...same } = src;
    // Each node of the clone is on its source node's host: the volume is copied where it is.
    const c =
      existing ??
      (await allocateCluster(
        s,
        r.ctx.config.cluster.network,
        src.nodes.length,
        { ...same, name: args.clone, status: 'creating', op: r.op.id, createdAt: now, updatedAt: now },
        (i) => {
          const from = src.nodes[i]!;
          return { host: from.host, ...(from.memory !== undefined ? { memory: from.memory } : {}), ...(from.cpu !== undefined ? { cpu: from.cpu } : {}) };
        },
      ));
    const ended = await Promise.allSettled([cloneHere(r, s, src, c), runParts(r, await partHosts(r, c.nodes, 'clone the cluster'))]);
    const failure = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
    if (failure) throw failure.reason;
    const how = (ended[0] as PromiseFulfilledResult<'snapshot' | 'copy'>).value;
    await s.repo.update(c.user, c.name, (now) => ({ ...now, status: 'running' }));
    return { cluster: c.name, user: c.user, id: c.id, from: src.name, nodes: c.nodes.length, volumes: how };
  },
  async undo(r) {
    const s = await cloneSetting(r);
    // Source nodes this operation froze are thawed, whatever state it was cut short in.
    for (const container of (r.op.state.held as string[] | undefined) ?? []) if ((await s.lxc.state(container)) === 'FROZEN') await s.lxc.unfreeze(container);
    const c = await s.repo.get(s.args.user, s.args.clone);
    if (isPart(r)) {
      if (c?.op === r.op.parent) await removeClusterParts(r, s, c.user, c.id, false);
      return;
    }
    await undoParts(r);
    if (!c || c.op !== r.op.id) return s.repo.releaseSubnetIfUnused(s.args.user);
    await removeClusterParts(r, s, c.user, c.id);
    await s.repo.remove(c.user, c.name);
    await s.repo.releaseSubnetIfUnused(c.user);
  },
  async plan(r) {
    const s = await cloneSetting(r);
    const src = await requireCluster(s);
    const runner = r.ctx.runner;
    runner.note(`take a new cluster id and ${src.nodes.length} address(es) in ${src.subnet}; write cluster ${s.args.clone}'s record in etcd`);
    for (const node of hereOnly(r, src.nodes)) {
      const to = `knarr-clusters/${src.user}-ID-${node.index}`;
      const running = (await s.lxc.state(node.container)) === 'RUNNING';
      if (running) await s.lxc.freeze(node.container);
      if (s.driver.cloneVolume) await s.driver.cloneVolume(s.pool, node.volume, to, runner);
      else {
        await s.driver.ensureVolume(s.pool, to, runner);
        runner.plan(['cp', '-a', '--reflink=auto', `${s.pool.mountpoint}/${node.volume}/delta`, `${s.pool.mountpoint}/${to}/delta`]);
      }
      if (running) await s.lxc.unfreeze(node.container);
    }
    runner.note(`write the hosts file of ${s.args.clone}, define and start its ${src.nodes.length} node(s) (lxc-start), as cluster create does`);
  },
};
