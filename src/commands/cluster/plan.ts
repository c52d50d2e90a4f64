import { parseCpus, validateClusterName, validateClusterSize } from '../../core/cluster.js';
import { placeNodes, type NodeStrategy } from '../../core/cluster-placement.js';
import { UserError } from '../../core/errors.js';
import { validateTags } from '../../core/hosts.js';
import { validateName } from '../../core/names.js';
import { formatSize, parseSize } from '../../core/size.js';
import { PlaceholderRepo } from '../../state/placeholders.js';
import type { CommandResult, Context } from '../types.js';
import { withStore } from '../with-store.js';
import { userOf } from './common.js';

/** The placement flags cluster plan takes (and cluster create, which places the same way). */
export interface PlacementFlags {
  spread?: boolean;
  pack?: boolean;
  host?: string;
  tags?: string[];
}

/** Where nodes may go, from the flags: --spread (the default) or --pack, a pinned host, tags; bad input named before anything is read. */
export function placementOf(opts: PlacementFlags): { strategy: NodeStrategy; host?: string; tags: string[] } {
  if (opts.spread && opts.pack)
    throw new UserError('--spread and --pack: give one of them', { hint: '--spread puts nodes on as many hosts as fit; --pack fills one host first' });
  return {
    strategy: opts.pack ? 'pack' : 'spread',
    ...(opts.host === undefined ? {} : { host: validateName('--host', opts.host) }),
    tags: validateTags('--tag', opts.tags ?? []),
  };
}

export interface ClusterPlanOptions extends PlacementFlags {
  size?: string;
  memory?: string;
  cpus?: string;
  user?: string;
  perNode?: boolean;
}

const ORDER = ['chosen', 'ranked-lower', 'rejected'];

/** `knarr cluster plan NAME --size N`: where each node of a new cluster would go, and why each other host was passed over; reads only. */
export async function clusterPlan(nameArg: string, opts: ClusterPlanOptions, ctx: Context): Promise<CommandResult> {
  const name = validateClusterName('NAME', nameArg);
  const size = validateClusterSize('--size', opts.size);
  const user = userOf(ctx, opts.user);
  const memory = opts.memory === undefined ? 0 : parseSize('--memory', opts.memory);
  const cpu = opts.cpus === undefined ? 0 : parseCpus('--cpus', opts.cpus);
  const where = placementOf(opts);
  const cluster = `${user}/${name}`;
  return withStore(ctx, async (store) => {
    // The room jobs, cluster nodes and other operations' placeholders take counts, as it does for a create.
    const views = await new PlaceholderRepo(store, ctx.config.fleet).views();
    const plan = placeNodes(views, { cluster, size, cpu, memory, ...where });
    const free = new Map(views.map((v) => [v.name, { cpu: v.cpu - v.usedCpu, memory: v.memory - v.usedMemory }]));
    const data = { cluster, size, ...where, ask: plan.ask, hosts: plan.hosts, reason: plan.reason, verdicts: plan.verdicts, nodes: plan.nodes };
    const exitCode = plan.reason === null ? 0 : 1;
    if (opts.perNode) {
      const rows = plan.nodes.flatMap((n) =>
        [...n.verdicts]
          .sort((a, b) => ORDER.indexOf(a.verdict) - ORDER.indexOf(b.verdict) || (b.score ?? 0) - (a.score ?? 0))
          .map((v) => [String(n.index), v.host, v.verdict, v.score === undefined ? '-' : v.score.toFixed(3), v.why]),
      );
      return { data, view: { kind: 'table', columns: ['NODE', 'HOST', 'VERDICT', 'SCORE', 'WHY'], rows }, exitCode };
    }
    const rows = plan.verdicts.map((v) => {
      const f = free.get(v.host);
      return [v.host, v.verdict, v.why, f ? `${f.cpu}m` : '-', f ? formatSize(Math.max(0, f.memory)) : '-'];
    });
    if (plan.reason !== null) ctx.events.warn(plan.reason);
    return { data, view: { kind: 'table', columns: ['HOST', 'VERDICT', 'WHY', 'FREE CPU', 'FREE MEMORY'], rows, wide: ['FREE CPU', 'FREE MEMORY'] }, exitCode };
  });
}
