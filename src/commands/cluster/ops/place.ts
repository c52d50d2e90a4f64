import { ConflictError } from '../../../core/errors.js';
import { fleetViews } from '../../../core/hosts.js';
import { Scheduler } from '../../../core/scheduler.js';
import type { OpRun } from '../../../ops/runner.js';
import { HostRepo } from '../../../state/hosts.js';
import type { Setting } from './shared.js';

/** How `cluster create` asked its nodes to be placed; none of them: every node on the creating host. */
export interface NodePlacementArgs {
  strategy?: 'spread' | 'pack';
  pin?: string;
  tags?: string[];
}

/** A node with no limit still takes room: this much, so the scheduler counts it. */
export const NODE_DEFAULT_CPU = 100;
export const NODE_DEFAULT_MEMORY = 64 * 1024 * 1024;

/** Each node's host, in index order, and where the user's files go. */
export async function placeNodes(
  r: OpRun,
  s: Setting<NodePlacementArgs & { user: string; size: number; cpu: number; memory: number; image: string; host: string; name: string }>,
): Promise<{ hosts: string[]; files?: 'share' }> {
  const { args } = s;
  const saved = r.op.state.placement as string[] | undefined;
  let hosts = saved;
  const fleet = await new HostRepo(r.store, r.ctx.config.fleet).list();
  if (!hosts) {
    if (!args.strategy && !args.pin && !args.tags?.length) hosts = Array.from({ length: args.size }, () => args.host);
    else {
      const candidates = [];
      for (const h of fleet) if (h.up && (await s.repo.image(h.host.name, args.image))) candidates.push(h);
      const scheduler = new Scheduler(fleetViews(candidates, []), { strategy: args.strategy === 'pack' ? 'binpack' : 'spread' });
      hosts = [];
      for (let i = 0; i < args.size; i++) {
        const p = scheduler.place({
          name: `${args.name}/${i}`,
          cpu: args.cpu || NODE_DEFAULT_CPU,
          memory: args.memory || NODE_DEFAULT_MEMORY,
          ports: [],
          tags: args.tags ?? [],
          host: args.pin,
          fixed: false,
          history: [],
        });
        if (!p.host)
          throw new ConflictError(`no host can take node ${i} of cluster ${args.name}: ${p.reason}`, { hint: 'see why with: knarr cluster plan (same flags)' });
        hosts.push(p.host);
      }
    }
    await r.save({ placement: hosts });
  }
  const used = [...new Set(hosts)];
  const shares = used.map((h) => fleet.find((x) => x.host.name === h)?.host.share);
  if (shares.every((sh) => sh !== undefined)) return { hosts, files: 'share' };
  if (used.length > 1)
    throw new ConflictError(
      `cluster ${args.name} would run on ${used.join(', ')}: a cluster over several hosts needs the fleet's shared data directory for /nfs`,
      {
        hint: 'start every agent with --share DIR (a directory every host mounts), or keep the cluster on one host: --host HOST',
      },
    );
  return { hosts };
}

/** The placeholders of this operation go: its nodes are in the record now, or it is undone. */
export async function releasePlaces(_r: OpRun): Promise<void> {}
