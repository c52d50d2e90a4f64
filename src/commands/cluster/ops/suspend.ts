import { ConflictError } from '../../../core/errors.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { nodeRefArgs, requireCluster, requireRunning, setting, targetNodes, type Setting } from './shared.js';
import { acrossHosts, hereOnly } from './span.js';

/** One node's part in a suspend or resume, for the command's result. */
export interface FreezeStep {
  node: number;
  hostname: string;
  container: string;
  /** false when the node already was as asked (a re-run, or frozen by hand). */
  changed: boolean;
}

/** lxc-info's states of a running node that is not frozen. */
const RUNNING = new Set(['RUNNING', 'THAWED']);

async function setFrozen(s: Setting, containers: string[], frozen: boolean): Promise<void> {
  // Other hosts' parts mark their own nodes at the same time: a compare-and-swap, not a put.
  await s.repo.update(s.args.user, s.args.name, (c) => ({
    ...c,
    nodes: c.nodes.map((n) => (containers.includes(n.container) ? { ...n, frozen: frozen || undefined } : n)),
  }));
}

/**
 * cluster.suspend and cluster.resume: the cgroup freezer holds or lets go every process of a node (lxc-freeze,
 * lxc-unfreeze). Each node it changes is recorded before it changes it, so undo puts exactly those back.
 */
function freezer(freeze: boolean): OpHandler {
  const verb = freeze ? 'suspend' : 'resume';
  const want = freeze ? 'FROZEN' : 'RUNNING';
  const apply = (s: Setting, container: string, to: boolean) => (to ? s.lxc.freeze(container) : s.lxc.unfreeze(container));
  const handler: OpHandler = {
    async run(r: OpRun) {
      const s = await setting(r, nodeRefArgs(r.op));
      const c = await requireCluster(s);
      requireRunning(c, verb);
      const nodes = hereOnly(r, targetNodes(c, s.args.node));
      const changed = [...((r.op.state.changed as string[] | undefined) ?? [])];
      const steps: FreezeStep[] = [];
      for (const [k, node] of nodes.entries()) {
        await r.checkpoint();
        const raw = await s.lxc.state(node.container);
        const state = raw !== null && RUNNING.has(raw) ? 'RUNNING' : raw;
        if (state !== 'RUNNING' && state !== 'FROZEN')
          throw new ConflictError(`cannot ${verb} ${node.hostname} of cluster ${c.name}: its container ${node.container} is ${raw ?? 'missing'}`, {
            hint: `start the cluster again: knarr cluster start ${c.name} --user ${c.user}`,
          });
        const mine = changed.includes(node.container);
        if (state !== want) {
          // Written down before it is done: an undo after a crash here finds it.
          if (!mine) {
            changed.push(node.container);
            await r.save({ changed });
          }
          await apply(s, node.container, freeze);
        }
        steps.push({ node: node.index, hostname: node.hostname, container: node.container, changed: mine || state !== want });
        await r.progress(k + 1, nodes.length, `${node.hostname} ${freeze ? 'frozen' : 'running'}`);
      }
      await setFrozen(
        s,
        nodes.map((n) => n.container),
        freeze,
      );
      return { cluster: c.name, user: c.user, [freeze ? 'suspended' : 'resumed']: steps };
    },
    async undo(r) {
      const s = await setting(r, nodeRefArgs(r.op));
      const changed = (r.op.state.changed as string[] | undefined) ?? [];
      if (changed.length === 0 || !s.existing) return;
      for (const container of changed) {
        const raw = await s.lxc.state(container);
        // Only a node still as this operation left it goes back; one stopped meanwhile stays stopped.
        if ((raw !== null && RUNNING.has(raw) ? 'RUNNING' : raw) === want) await apply(s, container, !freeze);
      }
      await setFrozen(s, changed, !freeze);
    },
    async plan(r) {
      const s = await setting(r, nodeRefArgs(r.op));
      const c = await requireCluster(s);
      requireRunning(c, verb);
      for (const node of hereOnly(r, targetNodes(c, s.args.node))) {
        const raw = await s.lxc.state(node.container);
        if ((raw === 'FROZEN') === freeze) r.ctx.runner.note(`${node.hostname} (${node.container}) is ${freeze ? 'frozen' : 'running'} already`);
        else await apply(s, node.container, freeze);
      }
      r.ctx.runner.note(`record the node(s) as ${freeze ? 'frozen' : 'running'} in cluster ${c.name}'s record in etcd`);
    },
  };
  return acrossHosts(handler, (c, r) => targetNodes(c, nodeRefArgs(r.op).node), `${verb} the cluster`);
}

export const clusterSuspend = freezer(true);
export const clusterResume = freezer(false);
