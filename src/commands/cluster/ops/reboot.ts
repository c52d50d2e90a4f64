import { ConflictError } from '../../../core/errors.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { nodeRefArgs, undoRun, requireCluster, requireRunning, setting, startNodes, targetNodes } from './shared.js';
import { acrossHosts, hereOnly } from './span.js';

const rebootSetting = (r: OpRun) => setting(r, nodeRefArgs(r.op));

/**
 * cluster.reboot: each node stopped and started again, one at a time (the others keep serving), with the
 * config the record gives now (a limit set for the next start takes effect). The node being rebooted is
 * written down first: an undo, or a resumed run, starts it again rather than leave it down.
 */
export const clusterReboot: OpHandler = acrossHosts(
  {
    async run(r) {
      const s = await rebootSetting(r);
      const c = await requireCluster(s);
      requireRunning(c, 'reboot');
      const nodes = hereOnly(r, targetNodes(c, s.args.node));
      const rebooted = [...((r.op.state.rebooted as string[] | undefined) ?? [])];
      for (const [k, node] of nodes.entries()) {
        if (rebooted.includes(node.container)) continue;
        await r.checkpoint();
        const state = await s.lxc.state(node.container);
        // A node this operation stopped before it was cut short is down by its hand: it is started, not refused.
        if ((state === null || state === 'STOPPED') && r.op.state.down !== node.container)
          throw new ConflictError(`cannot reboot ${node.hostname} of cluster ${c.name}: its container ${node.container} is ${state ?? 'missing'}`, {
            hint: `start the cluster again: knarr cluster start ${c.name} --user ${c.user}`,
          });
        await r.save({ down: node.container });
        await r.progress(k, nodes.length, `rebooting ${node.hostname}`);
        await s.lxc.stop(node.container);
        await startNodes(r, s, c, [node], 'rebooting');
        rebooted.push(node.container);
        await r.save({ down: null, rebooted });
      }
      // A stop thaws a frozen node: it came back running.
      const mine = nodes.map((n) => n.container);
      await s.repo.update(c.user, c.name, (now) => ({
        ...now,
        nodes: now.nodes.map(({ frozen, ...n }) => (mine.includes(n.container) ? n : { ...n, frozen })),
      }));
      return { cluster: c.name, user: c.user, rebooted: nodes.map((n) => n.hostname) };
    },
    async undo(r) {
      const down = r.op.state.down as string | null | undefined;
      if (!down) return;
      const s = await rebootSetting(r);
      const c = s.existing;
      const node = c?.nodes.find((n) => n.container === down);
      if (c && node) await startNodes(undoRun(r), s, c, [node], 'starting');
      await r.save({ down: null });
    },
    async plan(r) {
      const s = await rebootSetting(r);
      const c = await requireCluster(s);
      requireRunning(c, 'reboot');
      for (const node of hereOnly(r, targetNodes(c, s.args.node))) {
        await s.lxc.stop(node.container);
        await s.lxc.start(node.container);
      }
    },
  },
  (c, r) => targetNodes(c, nodeRefArgs(r.op).node),
  'reboot the cluster',
  // One host after another: the other hosts' nodes keep serving while one host's reboot.
  { sequential: true },
);
