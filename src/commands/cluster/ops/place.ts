import { containerName, type ClusterRecord } from '../../../core/cluster.js';
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

/** What placing some of a cluster's nodes needs: the cluster, the nodes from..to-1, their limits and image, how. */
interface PlaceRequest {
  user: string;
  name: string;
  id: number;
  from: number;
  to: number;
  cpu: number;
  memory: number;
  image: string;
  /** Where every node goes without a placement. */
  home: string;
  placement?: ClusterRecord['placement'];
  /** Hosts of the nodes the cluster has already (a scale out counts them). */
  existing?: string[];
}

/**
 * The host of each node from..to-1. With a placement, the scheduler places them under the fleet's placement
 * lock, and a placeholder per node holds its room until the operation releases it; without, all go home.
 * Kept in the operation (under key), so a resumed run places them where it did.
 */
export async function placeSome(r: OpRun, s: Setting, req: PlaceRequest, key = 'placement'): Promise<string[]> {
  const saved = r.op.state[key] as string[] | undefined;
  if (saved) return saved;
  const size = req.to - req.from;
  let hosts: string[];
  if (!req.placement) hosts = Array.from({ length: size }, () => req.home);
  else {
    // A host without the image cannot take a node: the scheduler hears why.
    const unfit = new Map<string, string>();
    for (const h of await new HostRepo(r.store, r.ctx.config.fleet).list())
      if (!(await s.repo.image(h.host.name, req.image))) unfit.set(h.host.name, `no image ${req.image} there (knarr image import ${req.image} on it)`);
    const cluster = `${req.user}/${req.name}`;
    const containers = Array.from({ length: size }, (_, k) => containerName(req.user, req.id, req.from + k));
    const { strategy, pin, tags } = req.placement;
    const held = await new PlaceholderRepo(r.store, r.ctx.config.fleet).hold(r.op.id, { cluster, containers, cpu: req.cpu, memory: req.memory }, (views) =>
      placeOver(views, {
        cluster,
        size,
        cpu: req.cpu,
        memory: req.memory,
        strategy,
        ...(pin ? { host: pin } : {}),
        tags: tags ?? [],
        firstIndex: req.from,
        ...(req.existing ? { existing: req.existing } : {}),
        unfit,
      }),
    );
    hosts = held.hosts;
  }
  await r.save({ [key]: hosts });
  return hosts;
}

/** Where the user's files go for nodes on these hosts: the fleet's share when every one has it; a cluster over several hosts must. */
export async function filesFor(r: OpRun, name: string, hosts: readonly string[]): Promise<'share' | undefined> {
  const used = [...new Set(hosts)];
  const fleet = await new HostRepo(r.store, r.ctx.config.fleet).list();
  if (used.every((h) => fleet.find((x) => x.host.name === h)?.host.share !== undefined)) return 'share';
  if (used.length > 1)
    // The fix is in the message: an operation's failure keeps its message only.
    throw new ConflictError(
      `cluster ${name} would run on ${used.join(', ')}: a cluster over several hosts needs the fleet's shared data directory for /nfs; ` +
        'start every agent with --share DIR, or keep the cluster on one host with --host HOST',
      { hint: 'the shared directory is one every host mounts (NFS): knarr daemon --share DIR' },
    );
  return undefined;
}

/** The placeholders of this operation go: its nodes are in the record now, or it is undone. */
export async function releasePlaces(r: OpRun): Promise<void> {
  await new PlaceholderRepo(r.store, r.ctx.config.fleet).release(r.op.id);
}
