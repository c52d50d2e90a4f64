import { ensureBridge } from '../../../host/net.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { clusterRefArgs, forwardOnly, thawed, requireCluster, setting, startNodes, writeHosts } from './shared.js';
import { acrossHosts, hereOnly, isPart } from './span.js';

const startSetting = (r: OpRun) => setting(r, clusterRefArgs(r.op));

/** cluster.start: the bridge and every node up again (their volumes kept); each host starts its own nodes. */
export const clusterStart: OpHandler = acrossHosts(
  {
    async run(r) {
      const s = await startSetting(r);
      const c = await requireCluster(s);
      const nodes = hereOnly(r, c.nodes);
      // lxc-start takes a frozen node for a running one: it is thawed.
      for (const node of nodes) if ((await s.lxc.state(node.container)) === 'FROZEN') await s.lxc.unfreeze(node.container);
      if (nodes.length > 0) await writeHosts(s, c);
      await startNodes(r, s, c, nodes, 'starting');
      const mine = nodes.map((n) => n.container);
      // Stopped or started, no node is frozen any more.
      await s.repo.update(c.user, c.name, (now) => ({
        ...now,
        nodes: now.nodes.map((n) => (mine.includes(n.container) ? thawed([n])[0]! : n)),
        ...(isPart(r) ? {} : { status: 'running' as const, op: r.op.id }),
      }));
      return { cluster: c.name, nodes: nodes.length };
    },
    async plan(r) {
      const s = await startSetting(r);
      const c = await requireCluster(s);
      await ensureBridge(r.ctx.runner, r.ctx.config.cluster.bridge, c.subnet);
      for (const node of hereOnly(r, c.nodes)) {
        if ((await s.lxc.state(node.container)) === 'FROZEN') await s.lxc.unfreeze(node.container);
        if (!(await s.lxc.defined(node.container))) r.ctx.runner.note(`define node ${node.hostname} (${node.container}) again: its volume and config`);
        await s.lxc.start(node.container);
      }
      r.ctx.runner.note(`set cluster ${c.name}'s status to running in etcd`);
    },
    undo: forwardOnly,
    undoes: false,
  },
  (c) => c.nodes,
  'start the cluster',
);
