import { ensureBridge } from '../../../host/net.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { clusterRefArgs, forwardOnly, thawed, requireCluster, setting, startNodes } from './shared.js';

const startSetting = (r: OpRun) => setting(r, clusterRefArgs(r.op));

/** cluster.start: the bridge and every node up again (their volumes kept). */
export const clusterStart: OpHandler = {
  async run(r) {
    const s = await startSetting(r);
    const c = await requireCluster(s);
    // lxc-start takes a frozen node for a running one: it is thawed.
    for (const node of c.nodes) if ((await s.lxc.state(node.container)) === 'FROZEN') await s.lxc.unfreeze(node.container);
    await startNodes(r, s, c, c.nodes, 'starting');
    // Stopped or started, no node is frozen any more.
    await s.repo.put({ ...c, nodes: thawed(c.nodes), status: 'running', op: r.op.id });
    return { cluster: c.name, nodes: c.nodes.length };
  },
  async plan(r) {
    const s = await startSetting(r);
    const c = await requireCluster(s);
    await ensureBridge(r.ctx.runner, r.ctx.config.cluster.bridge, c.subnet);
    for (const node of c.nodes) {
      if ((await s.lxc.state(node.container)) === 'FROZEN') await s.lxc.unfreeze(node.container);
      if (!(await s.lxc.defined(node.container))) r.ctx.runner.note(`define node ${node.hostname} (${node.container}) again: its volume and config`);
      await s.lxc.start(node.container);
    }
    r.ctx.runner.note(`set cluster ${c.name}'s status to running in etcd`);
  },
  undo: forwardOnly,
  undoes: false,
};
