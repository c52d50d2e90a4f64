import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { clusterRefArgs, forwardOnly, thawed, requireCluster, setting } from './shared.js';

const stopSetting = (r: OpRun) => setting(r, clusterRefArgs(r.op));

/** cluster.stop: every node stopped; volumes, addresses and record kept. */
export const clusterStop: OpHandler = {
  async run(r) {
    const s = await stopSetting(r);
    const c = await requireCluster(s);
    for (const [k, node] of c.nodes.entries()) {
      await r.checkpoint();
      await r.progress(k, c.nodes.length, `stopping ${node.hostname}`);
      await s.lxc.stop(node.container);
    }
    // Stopped or started, no node is frozen any more.
    await s.repo.put({ ...c, nodes: thawed(c.nodes), status: 'stopped', op: r.op.id });
    return { cluster: c.name, nodes: c.nodes.length };
  },
  async plan(r) {
    const s = await stopSetting(r);
    const c = await requireCluster(s);
    for (const node of c.nodes) await s.lxc.stop(node.container);
    r.ctx.runner.note(`set cluster ${c.name}'s status to stopped in etcd`);
  },
  undo: forwardOnly,
  undoes: false,
};
