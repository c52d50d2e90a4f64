import { limitsOf, nodeLimits, updatedLimits, withLimits, type ClusterLimits, type ClusterNode, type ClusterRecord } from '../../../core/cluster.js';
import { ConflictError } from '../../../core/errors.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import { cgroupLimits, unifiedCgroups } from '../../../host/lxc.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { defineNode, nodeRefArgs, undoRun, requireCluster, requireImage, setting, targetNodes, type NodeRef, type Setting } from './shared.js';
import { hereOnly, isPart, partHosts, runParts, undoParts } from './span.js';

/** What `knarr cluster update` wrote into the operation: the new limits (bytes, millicores; 0 for none); a limit left out stays. */
export interface UpdateArgs extends NodeRef {
  memory?: number;
  cpu?: number;
}

export function updateArgs(op: OpRecord): UpdateArgs {
  const a = new OpArgs(op);
  return { ...nodeRefArgs(op), memory: a.optionalInteger('memory'), cpu: a.optionalInteger('cpu') };
}

/** How a node took its new limits. */
export interface UpdateStep {
  node: number;
  hostname: string;
  memory: number;
  cpu: number;
  /** live: written to its cgroups now; next start: recorded and in its config, in force when it starts again. */
  applied: 'live' | 'next start';
  /** Why not live: the node is stopped, or the kernel refused (memory in use above the new limit). */
  reason?: string;
}

/**
 * Each node's config is written from the record, and a running (or frozen) node's cgroups are set now;
 * what the kernel refuses, or a stopped node, takes the limit when it next starts.
 */
async function applyLimits(r: OpRun, s: Setting, c: ClusterRecord, nodes: ClusterNode[], kinds: { memory: boolean; cpu: boolean }): Promise<UpdateStep[]> {
  const image = await requireImage(s, c);
  const cgroup2 = await unifiedCgroups();
  const steps: UpdateStep[] = [];
  for (const [k, node] of nodes.entries()) {
    await r.checkpoint();
    const limits = nodeLimits(c, node);
    const config = await defineNode(r, s, c, node, image, cgroup2);
    if ((await s.lxc.config(node.container)) !== config) await s.lxc.define(node.container, config);
    const state = await s.lxc.state(node.container);
    let reason: string | undefined;
    if (state === null || state === 'STOPPED') reason = `${node.hostname} is ${state === null ? 'not defined' : 'stopped'}`;
    else {
      const wanted = cgroupLimits(limits.memory, limits.cpu, cgroup2, true).filter(([key]) => (key.startsWith('memory.') ? kinds.memory : kinds.cpu));
      // Each setting on its own: a memory limit refused does not keep a cpu limit from taking effect now.
      const refusals: string[] = [];
      for (const [key, value] of wanted) {
        const refused = await s.lxc.setCgroup(node.container, key, value);
        if (refused) refusals.push(`the kernel refused ${key} = ${value}: ${refused}`);
      }
      if (refusals.length > 0) reason = refusals.join('; ');
    }
    steps.push({ node: node.index, hostname: node.hostname, ...limits, applied: reason ? 'next start' : 'live', ...(reason ? { reason } : {}) });
    await r.progress(k + 1, nodes.length, `${node.hostname}: ${reason ? `at its next start (${reason})` : 'live'}`);
  }
  return steps;
}

const updateSetting = (r: OpRun) => setting(r, updateArgs(r.op));

/** cluster.update: new memory and cpu limits, recorded in the cluster's record first (so they outlive a restart), then applied. */
export const clusterUpdate: OpHandler = {
  async run(r) {
    const s = await updateSetting(r);
    const c = await requireCluster(s);
    const kinds = { memory: s.args.memory !== undefined, cpu: s.args.cpu !== undefined };
    // A part applies what the home host recorded already.
    if (isPart(r)) return { cluster: c.name, user: c.user, nodes: await applyLimits(r, s, c, hereOnly(r, targetNodes(c, s.args.node)), kinds) };
    if (c.status !== 'running' && c.status !== 'stopped')
      throw new ConflictError(`cannot update cluster ${c.name}: it is ${c.status}`, { hint: `wait for ${c.op}: knarr op wait ${c.op}` });
    const nodes = targetNodes(c, s.args.node);
    // The limits before, kept across a resumed run (by then the record holds the new ones).
    const before = (r.op.state.before as ClusterLimits | undefined) ?? limitsOf(c);
    await r.save({ before });
    const next = (await s.repo.update(c.user, c.name, (now) => withLimits(now, updatedLimits(withLimits(now, before), s.args))))!;
    // The other hosts apply the limits to their nodes; then this host to its own.
    const parts = await runParts(r, await partHosts(r, nodes, 'update the cluster'));
    const steps = await applyLimits(r, s, next, hereOnly(r, targetNodes(next, s.args.node)), kinds);
    const theirs = parts.flatMap((p) => ((p.result as { nodes?: UpdateStep[] } | null)?.nodes ?? []) as UpdateStep[]);
    return {
      cluster: c.name,
      user: c.user,
      nodes: [...theirs, ...steps].sort((a, b) => a.node - b.node),
      ...(nodes.length === c.nodes.length ? {} : { node: s.args.node }),
    };
  },
  async undo(r) {
    const s = await updateSetting(r);
    const kinds = { memory: s.args.memory !== undefined, cpu: s.args.cpu !== undefined };
    if (isPart(r)) {
      // The home host put the record back first: this host's nodes take the limits it holds now.
      if (s.existing) await applyLimits(undoRun(r), s, s.existing, hereOnly(r, targetNodes(s.existing, s.args.node)), kinds);
      return;
    }
    const before = r.op.state.before as ClusterLimits | undefined;
    if (!before || !s.existing) return;
    const back = (await s.repo.update(s.args.user, s.args.name, (now) => withLimits(now, before)))!;
    await undoParts(r);
    await applyLimits(undoRun(r), s, back, hereOnly(r, targetNodes(back, s.args.node)), kinds);
  },
  async plan(r) {
    const s = await updateSetting(r);
    const c = await requireCluster(s);
    const next = withLimits(c, updatedLimits(c, s.args));
    const cgroup2 = await unifiedCgroups();
    for (const node of hereOnly(r, targetNodes(next, s.args.node))) {
      const limits = nodeLimits(next, node);
      // Under --dry-run define only names the config file it would write.
      await s.lxc.define(node.container, '');
      const state = await s.lxc.state(node.container);
      if (state === null || state === 'STOPPED') r.ctx.runner.note(`${node.hostname} is stopped: its new limits take effect when it starts`);
      else
        for (const [key, value] of cgroupLimits(limits.memory, limits.cpu, cgroup2, true))
          if (key.startsWith('memory.') ? s.args.memory !== undefined : s.args.cpu !== undefined) await s.lxc.setCgroup(node.container, key, value);
    }
    r.ctx.runner.note(`record the new limits in cluster ${c.name}'s record in etcd`);
  },
};
