import { NotFoundError } from '../../../core/errors.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { hostsPath } from '../common.js';
import { clusterRefArgs, dropBridgeIfUnused, forwardOnly, removeClusterParts, requireCluster, setting } from './shared.js';
import { acrossHosts, hereOnly, isPart } from './span.js';

const deleteSetting = (r: OpRun) => setting(r, clusterRefArgs(r.op));

/**
 * cluster.delete: every node, volume, address and the record; the user's data at /nfs stays. Each other host
 * removes its own nodes first; a host that is down is left to its collector, which removes them when it is back.
 */
export const clusterDelete: OpHandler = acrossHosts(
  {
    async run(r) {
      const s = await deleteSetting(r);
      const c = s.existing;
      if (isPart(r)) {
        // This host's nodes only: the addresses and the record are the home host's to give back.
        if (c) await removeClusterParts(r, s, c.user, c.id, false);
        if (c) await dropBridgeIfUnused(r, s, r.op.host, c);
        return { cluster: s.args.name, deleted: true, nodes: c ? hereOnly(r, c.nodes).length : 0 };
      }
      if (!c) {
        // A run cut short after the record went: what is left is the subnet.
        if (r.op.attempts > 1) {
          await s.repo.releaseSubnetIfUnused(s.args.user);
          return { cluster: s.args.name, deleted: true };
        }
        throw new NotFoundError(`user ${s.args.user} has no cluster ${s.args.name}`);
      }
      await r.checkpoint();
      await s.repo.update(c.user, c.name, (now) => ({ ...now, status: 'deleting', op: r.op.id }));
      await r.progress(0, 1, `removing ${c.nodes.length} node(s)`);
      await removeClusterParts(r, s, c.user, c.id);
      await s.repo.remove(c.user, c.name);
      await s.repo.releaseSubnetIfUnused(c.user);
      await dropBridgeIfUnused(r, s, r.op.host);
      return { cluster: c.name, deleted: true };
    },
    async plan(r) {
      const s = await deleteSetting(r);
      const c = await requireCluster(s);
      for (const node of hereOnly(r, c.nodes)) {
        await s.lxc.remove(node.container);
        await s.driver.removeVolume(s.pool, node.volume, r.ctx.runner);
      }
      r.ctx.runner.plan(['rm', '-f', hostsPath(s.pool, c.user, c.id)]);
      r.ctx.runner.note(`remove cluster ${c.name}'s record and its nodes' addresses from etcd (and the user's subnet, if it was the last cluster)`);
    },
    undo: forwardOnly,
    undoes: false,
  },
  (c) => c.nodes,
  'delete the cluster',
  { skipDown: true },
);
