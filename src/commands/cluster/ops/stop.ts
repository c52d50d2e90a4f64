import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { clusterRefArgs, forwardOnly, thawed, requireCluster, setting } from './shared.js';
import { acrossHosts, hereOnly, isPart } from './span.js';

const stopSetting = (r: OpRun) => setting(r, clusterRefArgs(r.op));

/** cluster.stop: every node stopped; volumes, addresses and record kept. Each host stops its own nodes. */
export const clusterStop: OpHandler = acrossHosts(
  {
    async run(r) {
      const s = await stopSetting(r);
      const c = await requireCluster(s);
      const nodes = hereOnly(r, c.nodes);
      for (const [k, node] of nodes.entries()) {
        await r.checkpoint();
        await r.progress(k, nodes.length, `stopping ${node.hostname}`);
        await s.lxc.stop(node.container);
      }
      const mine = nodes.map((n) => n.container);
      // Stopped or started, no node is frozen any more.
      await s.repo.update(c.user, c.name, (now) => ({
        ...now,
        nodes: now.nodes.map((n) => (mine.includes(n.container) ? thawed([n])[0]! : n)),
        ...(isPart(r) ? {} : { status: 'stopped' as const, op: r.op.id }),
      }));
      return { cluster: c.name, nodes: nodes.length };
    },
    async plan(r) {
      const s = await stopSetting(r);
      const c = await requireCluster(s);
      for (const node of hereOnly(r, c.nodes)) await s.lxc.stop(node.container);
      r.ctx.runner.note(`set cluster ${c.name}'s status to stopped in etcd`);
    },
    undo: forwardOnly,
    undoes: false,
  },
  (c) => c.nodes,
  'stop the cluster',
);
