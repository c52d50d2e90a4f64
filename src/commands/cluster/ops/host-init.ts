import { clustersToInit } from '../../../core/cluster.js';
import { InterruptedError, OperationFailedError } from '../../../core/errors.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import type { OpHandler } from '../../../ops/runner.js';
import { ClusterRepo } from '../../../state/clusters.js';
import { forwardOnly } from './shared.js';

/** The fleet's start mode for a joining host: new deletes its clusters, anything else is recovery. */
export function hostInitArgs(op: OpRecord): { mode: 'new' | 'recovery' } {
  return { mode: new OpArgs(op).optionalString('mode') === 'new' ? 'new' : 'recovery' };
}

/**
 * host.init: a joining host prepares for the fleet's start mode, one child operation per cluster of
 * its: recovery starts those that were running, new deletes them all. The clusters are chosen once,
 * so a resumed run carries on with the same ones.
 */
export const hostInit: OpHandler = {
  async run(r) {
    const { mode } = hostInitArgs(r.op);
    let targets = r.op.state.targets as { user: string; name: string }[] | undefined;
    if (!targets) {
      const all = await new ClusterRepo(r.store, r.ctx.config.fleet).list();
      targets = clustersToInit(all, r.op.host, mode).map((c) => ({ user: c.user, name: c.name }));
      await r.save({ targets });
    }
    const failed: string[] = [];
    for (const [i, t] of targets.entries()) {
      await r.checkpoint();
      await r.progress(i, targets.length, `${mode === 'new' ? 'deleting' : 'starting'} ${t.user}/${t.name}`);
      // Recovery starts this host's own nodes only: another host of the cluster may be down still.
      const child = await r.child(`${t.user}/${t.name}`, mode === 'new' ? 'cluster.delete' : 'cluster.start', mode === 'new' ? t : { ...t, part: true });
      // A shutdown cuts the child short: the parent stops too, and both are resumed.
      if (child.status === 'running' && r.ctx.signal.aborted) throw new InterruptedError();
      if (child.status !== 'done') failed.push(`${child.id} (${t.user}/${t.name}): ${child.error ?? child.status}`);
    }
    await r.progress(targets.length, targets.length, 'done');
    if (failed.length > 0)
      throw new OperationFailedError(`${failed.length} of ${targets.length} cluster(s) did not ${mode === 'new' ? 'go' : 'start'}: ${failed.join('; ')}`);
    return { mode, clusters: targets.length };
  },
  undo: forwardOnly,
  undoes: false,
};
