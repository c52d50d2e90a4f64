import { containerName } from '../../../core/cluster.js';
import { placeNodes as placeOver, type NodeStrategy } from '../../../core/cluster-placement.js';
import { ConflictError } from '../../../core/errors.js';
import type { OpRun } from '../../../ops/runner.js';
import { HostRepo } from '../../../state/hosts.js';
import { PlaceholderRepo } from '../../../state/placeholders.js';
import type { Setting } from './shared.js';

/** How `cluster create` asked its nodes to be placed; none of them: every node on the creating host, as asked. */
export interface NodePlacementArgs {
  strategy?: NodeStrategy;
  pin?: string;
  tags?: string[];
}

type PlacedArgs = NodePlacementArgs & { user: string; name: string; size: number; cpu: number; memory: number; image: string; host: string };

/**
 * Each node's host, in index order, and where the user's files go. With placement flags the scheduler places
 * the nodes under the fleet's placement lock, and a placeholder per node holds its room until the node is in
 * the record; the placement is kept in the operation, so a resumed run makes the same cluster.
 */
export async function placeNodes(r: OpRun, s: Setting<PlacedArgs>, id: number): Promise<{ hosts: string[]; files?: 'share' }> {
  const { args } = s;
  const fleet = await new HostRepo(r.store, r.ctx.config.fleet).list();
  let hosts = r.op.state.placement as string[] | undefined;
  if (!hosts) {
    if (!args.strategy && !args.pin && !args.tags?.length) hosts = Array.from({ length: args.size }, () => args.host);
    else {
      // A host without the image cannot take a node: the scheduler hears why.
      const unfit = new Map<string, string>();
      for (const h of fleet)
        if (!(await s.repo.image(h.host.name, args.image))) unfit.set(h.host.name, `no image ${args.image} there (knarr image import ${args.image} on it)`);
      const cluster = `${args.user}/${args.name}`;
      const containers = Array.from({ length: args.size }, (_, i) => containerName(args.user, id, i));
      const held = await new PlaceholderRepo(r.store, r.ctx.config.fleet).hold(r.op.id, { cluster, containers, cpu: args.cpu, memory: args.memory }, (views) =>
        placeOver(views, {
          cluster,
          size: args.size,
          cpu: args.cpu,
          memory: args.memory,
          strategy: args.strategy ?? 'spread',
          ...(args.pin ? { host: args.pin } : {}),
          tags: args.tags ?? [],
          unfit,
        }),
      );
      hosts = held.hosts;
    }
    await r.save({ placement: hosts });
  }
  const used = [...new Set(hosts)];
  const shares = used.map((h) => fleet.find((x) => x.host.name === h)?.host.share);
  if (shares.every((sh) => sh !== undefined)) return { hosts, files: 'share' };
  if (used.length > 1)
    // The fix is in the message: an operation's failure keeps its message only.
    throw new ConflictError(
      `cluster ${args.name} would run on ${used.join(', ')}: a cluster over several hosts needs the fleet's shared data directory for /nfs; ` +
        'start every agent with --share DIR, or keep the cluster on one host with --host HOST',
      { hint: 'the shared directory is one every host mounts (NFS): knarr daemon --share DIR' },
    );
  return { hosts };
}

/** The placeholders of this operation go: its nodes are in the record now, or it is undone. */
export async function releasePlaces(r: OpRun): Promise<void> {
  await new PlaceholderRepo(r.store, r.ctx.config.fleet).release(r.op.id);
}
