import { containerName, nodeHostname, type ClusterNode, type ClusterRecord } from '../../../core/cluster.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { planNodes, removeNode, requireCluster, setting, startNodes, writeHosts, type ClusterRef } from './shared.js';

/** What `knarr cluster scale` wrote into the operation: the cluster and the size it is to have. */
export interface ScaleArgs extends ClusterRef {
  size: number;
}

export function scaleArgs(op: OpRecord): ScaleArgs {
  const a = new OpArgs(op);
  return { user: a.string('user'), name: a.string('name'), pool: a.optionalString('pool'), size: a.integer('size') };
}

const scaleSetting = (r: OpRun) => setting(r, scaleArgs(r.op));

/** cluster.scale: out adds nodes (undone if it fails), in removes the highest ones; the others keep running with their data. */
export const clusterScale: OpHandler = {
  async run(r) {
    const s = await scaleSetting(r);
    const c = await requireCluster(s);
    const from = (r.op.state.from as number | undefined) ?? c.nodes.length;
    // The status before scaling, kept across a resumed run (the record then says scaling).
    const before = (r.op.state.before as ClusterRecord['status'] | undefined) ?? (c.status === 'scaling' ? 'running' : c.status);
    // The nodes as they were: what an undo puts back when a scale in had removed none yet.
    const original = (r.op.state.original as ClusterNode[] | undefined) ?? c.nodes;
    await r.save({ from, before, original });
    const to = s.args.size;
    if (to > from) {
      const added = await planNodes(s, c, from, to);
      const next = { ...c, status: 'scaling' as const, op: r.op.id, nodes: [...c.nodes.filter((n) => n.index < from), ...added] };
      await writeHosts(s, next);
      await s.repo.put(next);
      await startNodes(r, s, next, added, 'adding');
      // A stopped cluster grows stopped: its new nodes are made, then stopped like the others.
      if (before === 'stopped') for (const n of added) await s.lxc.stop(n.container);
      await s.repo.put({ ...next, status: before === 'stopped' ? 'stopped' : 'running' });
    } else if (to < from) {
      const kept = c.nodes.filter((n) => n.index < to);
      const next = { ...c, status: 'scaling' as const, op: r.op.id, nodes: kept };
      await s.repo.put(next);
      // From here nodes go: an undo finishes taking them out rather than leave some outside the record.
      await r.save({ shrunk: true });
      await writeHosts(s, next);
      for (const i of Array.from({ length: from - to }, (_, k) => from - 1 - k)) {
        await r.checkpoint();
        await r.progress(from - 1 - i, from - to, `removing ${nodeHostname(i)}`);
        await removeNode(r, s, c.user, containerName(c.user, c.id, i));
      }
      await s.repo.put({ ...next, status: before === 'stopped' ? 'stopped' : 'running' });
    }
    return { cluster: c.name, from, to };
  },
  async undo(r) {
    const s = await scaleSetting(r);
    const c = await s.repo.get(s.args.user, s.args.name);
    const from = r.op.state.from as number | undefined;
    const saved = r.op.state.before as ClusterRecord['status'] | undefined;
    const before = saved === undefined || saved === 'scaling' ? 'running' : saved;
    const to = s.args.size;
    if (!c || from === undefined || to === from) return;
    if (to > from) {
      // Out: the nodes it added go.
      for (let i = from; i < to; i++) await removeNode(r, s, c.user, containerName(c.user, c.id, i));
      const back = { ...c, status: before, nodes: c.nodes.filter((n) => n.index < from) };
      await writeHosts(s, back);
      await s.repo.put(back);
      return;
    }
    if (!r.op.state.shrunk) {
      // In, before any node went: the cluster as it was.
      const back = { ...c, status: before, nodes: (r.op.state.original as ClusterNode[] | undefined) ?? c.nodes };
      await writeHosts(s, back);
      await s.repo.put(back);
      return;
    }
    // In: removed nodes cannot come back; the ones still there go, so none is left outside the record.
    for (let i = from - 1; i >= to; i--) await removeNode(r, s, c.user, containerName(c.user, c.id, i));
    await s.repo.put({ ...c, status: before, nodes: c.nodes.filter((n) => n.index < to) });
  },
};
