import { readdir } from 'node:fs/promises';
import { containerName, nodeHostname, type ClusterNode, type ClusterRecord } from '../../../core/cluster.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { filesFor, placeSome, releasePlaces } from './place.js';
import { planNodes, removeNode, requireCluster, setting, startNodes, writeHosts, type ClusterRef, type Setting } from './shared.js';
import { downHosts, hereOnly, isPart, otherHosts, partHosts, runParts, undoParts } from './span.js';

/** What `knarr cluster scale` wrote into the operation: the cluster and the size it is to have (a part: the size before, and the status). */
export interface ScaleArgs extends ClusterRef {
  size: number;
  from?: number;
  before?: string;
}

export function scaleArgs(op: OpRecord): ScaleArgs {
  const a = new OpArgs(op);
  return {
    user: a.string('user'),
    name: a.string('name'),
    pool: a.optionalString('pool'),
    size: a.integer('size'),
    from: a.optionalInteger('from'),
    before: a.optionalString('before'),
  };
}

const scaleSetting = (r: OpRun) => setting(r, scaleArgs(r.op));

/** Every container of the cluster on this host from index `at` up, record or not (what a crash may have left is found too). */
async function containersFrom(s: Setting, c: ClusterRecord, at: number): Promise<string[]> {
  const prefix = `${c.user}-${c.id}-`;
  const names = new Set([...(await s.lxc.list()), ...(await readdir(`${s.pool.mountpoint}/knarr-clusters`).catch(() => [] as string[]))]);
  return [...names].filter((n) => n.startsWith(prefix) && Number(n.slice(prefix.length)) >= at).sort();
}

/** One other host's part: its hosts file as the record is now; its new nodes made (out), or its nodes past the size removed (in). */
async function scalePart(r: OpRun, s: Setting<ScaleArgs>, c: ClusterRecord): Promise<unknown> {
  const from = s.args.from ?? c.nodes.length;
  await writeHosts(s, c);
  if (s.args.size > from) {
    const added = hereOnly(r, c.nodes).filter((n) => n.index >= from);
    await startNodes(r, s, c, added, 'adding');
    if (s.args.before === 'stopped') for (const n of added) await s.lxc.stop(n.container);
    return { cluster: c.name, added: added.map((n) => n.hostname) };
  }
  // The home host gives the addresses back.
  const gone = await containersFrom(s, c, s.args.size);
  for (const name of gone) await removeNode(r, s, c.user, name, false);
  return { cluster: c.name, removed: gone };
}

/**
 * cluster.scale: out adds nodes (placed as the cluster's were; undone if it fails), in removes the highest ones;
 * the others keep running with their data. Each other host with nodes of the cluster does its own part.
 */
export const clusterScale: OpHandler = {
  async run(r) {
    const s = await scaleSetting(r);
    const c = await requireCluster(s);
    if (isPart(r)) return scalePart(r, s, c);
    const from = (r.op.state.from as number | undefined) ?? c.nodes.length;
    // The status before scaling, kept across a resumed run (the record then says scaling).
    const before = (r.op.state.before as ClusterRecord['status'] | undefined) ?? (c.status === 'scaling' ? 'running' : c.status);
    // The nodes as they were: what an undo puts back when a scale in had removed none yet.
    const original = (r.op.state.original as ClusterNode[] | undefined) ?? c.nodes;
    const to = s.args.size;
    // Each other host of its nodes rewrites its hosts file: one that is down would hold the scale until it is back.
    if (to > from && c.op !== r.op.id) await partHosts(r, c.nodes, 'scale the cluster out');
    await r.save({ from, before, original });
    const partArgs = { ...r.op.args, from, before };
    if (to > from) {
      const kept = c.nodes.filter((n) => n.index < from);
      const hosts = await placeSome(r, s, { ...c, from, to, home: c.host, existing: kept.map((n) => n.host) });
      // New hosts for a cluster whose files are on the pool: refused, as a create over several hosts is.
      if (c.files !== 'share') await filesFor(r, c.name, [...kept.map((n) => n.host), ...hosts]);
      const added = await planNodes(s, c, from, to, hosts);
      // Compare-and-swap: a node moved meanwhile (migrate) keeps its host.
      const next = (await s.repo.update(c.user, c.name, (now) => ({
        ...now,
        status: 'scaling' as const,
        op: r.op.id,
        nodes: [...now.nodes.filter((n) => n.index < from), ...added],
      })))!;
      await writeHosts(s, next);
      const ended = await Promise.allSettled([
        (async () => {
          await startNodes(r, s, next, hereOnly(r, added), 'adding');
          // A stopped cluster grows stopped: its new nodes are made, then stopped like the others.
          if (before === 'stopped') for (const n of hereOnly(r, added)) await s.lxc.stop(n.container);
        })(),
        runParts(r, otherHosts(r, next.nodes), { args: partArgs }),
      ]);
      const failure = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
      if (failure) throw failure.reason;
      await s.repo.update(c.user, c.name, (now) => ({ ...now, status: before === 'stopped' ? 'stopped' : 'running' }));
      await releasePlaces(r);
    } else if (to < from) {
      const next = (await s.repo.update(c.user, c.name, (now) => ({
        ...now,
        status: 'scaling' as const,
        op: r.op.id,
        nodes: now.nodes.filter((n) => n.index < to),
      })))!;
      // From here nodes go: an undo finishes taking them out rather than leave some outside the record.
      await r.save({ shrunk: true });
      await writeHosts(s, next);
      // Another host that is down keeps its nodes until its collector finds them unowned.
      const others = otherHosts(r, c.nodes);
      const down = await downHosts(r, others);
      await runParts(
        r,
        others.filter((h) => !down.includes(h)),
        { args: partArgs },
      );
      for (const i of Array.from({ length: from - to }, (_, k) => from - 1 - k)) {
        await r.checkpoint();
        await r.progress(from - 1 - i, from - to, `removing ${nodeHostname(i)}`);
        // Here: the container, volume and address; elsewhere (done by that host's part): the address.
        await removeNode(r, s, c.user, containerName(c.user, c.id, i));
      }
      await s.repo.update(c.user, c.name, (now) => ({ ...now, status: before === 'stopped' ? 'stopped' : 'running' }));
    }
    return { cluster: c.name, from, to };
  },
  async undo(r) {
    const s = await scaleSetting(r);
    const c = await s.repo.get(s.args.user, s.args.name);
    if (isPart(r)) {
      if (!c) return;
      const from = s.args.from ?? c.nodes.length;
      // Out: this host's new nodes go; in: the rest of its nodes past the size go too. The record is the home host's to put back.
      for (const name of await containersFrom(s, c, Math.min(s.args.size, from))) await removeNode(r, s, c.user, name, false);
      await writeHosts(s, c);
      return;
    }
    const from = r.op.state.from as number | undefined;
    const saved = r.op.state.before as ClusterRecord['status'] | undefined;
    const before = saved === undefined || saved === 'scaling' ? 'running' : saved;
    const to = s.args.size;
    if (!c || from === undefined || to === from) return releasePlaces(r);
    if (to > from) {
      // Out: the nodes it added go, on every host; the record first, so each host's hosts file is written from it.
      const back = (await s.repo.update(c.user, c.name, (now) => ({ ...now, status: before, nodes: now.nodes.filter((n) => n.index < from) })))!;
      await undoParts(r);
      for (let i = from; i < to; i++) await removeNode(r, s, c.user, containerName(c.user, c.id, i));
      await writeHosts(s, back);
      return releasePlaces(r);
    }
    if (!r.op.state.shrunk) {
      // In, before any node went: the cluster as it was.
      const original = (r.op.state.original as ClusterNode[] | undefined) ?? c.nodes;
      const back = (await s.repo.update(c.user, c.name, (now) => ({ ...now, status: before, nodes: original })))!;
      await writeHosts(s, back);
      return;
    }
    // In: removed nodes cannot come back; the ones still there go, so none is left outside the record.
    await undoParts(r);
    for (let i = from - 1; i >= to; i--) await removeNode(r, s, c.user, containerName(c.user, c.id, i));
    await s.repo.update(c.user, c.name, (now) => ({ ...now, status: before, nodes: now.nodes.filter((n) => n.index < to) }));
  },
};
