import { mkdir, writeFile } from 'node:fs/promises';
import { ConflictError } from '../../../core/errors.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { filesFor, placeSome, releasePlaces, type NodePlacementArgs } from './place.js';
import { allocateCluster, filesDir, removeClusterParts, setting, startNodes, writeHosts, type Setting } from './shared.js';
import { hereOnly, isPart, otherHosts, runParts, undoParts } from './span.js';

/** What `knarr cluster create` checked and wrote into the operation. */
export interface CreateArgs extends NodePlacementArgs {
  user: string;
  name: string;
  size: number;
  image: string;
  host: string;
  pool?: string;
  /** Bytes and millicores per node; 0 for no limit. */
  memory: number;
  cpu: number;
  authorizedKeys?: string;
}

export function createArgs(op: OpRecord): CreateArgs {
  const a = new OpArgs(op);
  const strategy = a.optionalString('strategy');
  return {
    user: a.string('user'),
    name: a.string('name'),
    size: a.integer('size'),
    image: a.string('image'),
    host: a.string('host'),
    pool: a.optionalString('pool'),
    memory: a.optionalInteger('memory') ?? 0,
    cpu: a.optionalInteger('cpu') ?? 0,
    authorizedKeys: a.optionalString('authorizedKeys'),
    ...(strategy === 'spread' || strategy === 'pack' ? { strategy } : {}),
    pin: a.optionalString('pin'),
    tags: a.optionalString('tags')?.split(',').filter(Boolean),
  };
}

const createSetting = (r: OpRun) => setting(r, createArgs(r.op));

/** The user's files a node mounts (/nfs data, ssh keys): on the share for a cluster that has it there. */
async function makeUserFiles(s: Setting<CreateArgs>, c: Parameters<typeof filesDir>[1]): Promise<void> {
  const user = filesDir(s, c);
  await mkdir(`${user}/data`, { recursive: true });
  await mkdir(`${user}/ssh`, { recursive: true, mode: 0o700 });
  if (s.args.authorizedKeys) await writeFile(`${user}/ssh/authorized_keys`, s.args.authorizedKeys, { mode: 0o600 });
}

/**
 * cluster.create: where each node goes (placeholders hold the room), then id, record, subnet and addresses,
 * hosts file, and each node, this host's here and every other host's by its agent at the same time; undone as a whole.
 */
export const clusterCreate: OpHandler = {
  async run(r) {
    const s = await createSetting(r);
    const { args } = s;
    if (isPart(r)) {
      // One host's part: its nodes of the record the home host wrote.
      const c = s.existing;
      if (!c || c.op !== r.op.parent) throw new ConflictError(`cluster ${args.user}/${args.name} is not the one ${r.op.parent} is making`);
      const nodes = hereOnly(r, c.nodes);
      await makeUserFiles(s, c);
      await writeHosts(s, c);
      await startNodes(r, s, c, nodes, 'starting');
      return { cluster: c.name, nodes: nodes.length };
    }
    // A resumed run finds its id in the record it made; a run cut short before that takes a new one.
    if (s.existing && s.existing.op !== r.op.id) throw new ConflictError(`user ${args.user} already has a cluster ${args.name}`);
    // The id first, kept in the operation: the placeholders are named after the nodes' containers.
    const id = s.existing?.id ?? (r.op.state.id as number | undefined) ?? (await s.repo.nextId());
    if (r.op.state.id !== id) await r.save({ id });
    const placement = args.strategy
      ? { strategy: args.strategy, ...(args.pin ? { pin: args.pin } : {}), ...(args.tags?.length ? { tags: args.tags } : {}) }
      : undefined;
    const hosts =
      s.existing?.nodes.map((n) => n.host) ??
      (await placeSome(r, s, { ...args, id, from: 0, to: args.size, home: args.host, ...(placement ? { placement } : {}) }));
    const files = s.existing ? s.existing.files : await filesFor(r, args.name, hosts);
    const now = new Date().toISOString();
    const c =
      s.existing ??
      (await allocateCluster(
        s,
        r.ctx.config.cluster.network,
        args.size,
        {
          name: args.name,
          user: args.user,
          status: 'creating',
          image: args.image,
          pool: s.pool.name,
          host: args.host,
          memory: args.memory,
          cpu: args.cpu,
          op: r.op.id,
          ...(files ? { files } : {}),
          ...(placement ? { placement } : {}),
          createdAt: now,
          updatedAt: now,
        },
        (i) => ({ host: hosts[i]! }),
        id,
      ));
    await makeUserFiles(s, c);
    await writeHosts(s, c);
    // This host's nodes and the other hosts' parts at once; every one has ended before a failure is thrown.
    const ended = await Promise.allSettled([startNodes(r, s, c, hereOnly(r, c.nodes), 'starting'), runParts(r, otherHosts(r, c.nodes))]);
    const failure = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
    if (failure) throw failure.reason;
    // The nodes count against their hosts from the record whatever its status: the placeholders may go at the same time.
    await Promise.all([s.repo.update(c.user, c.name, (now) => ({ ...now, status: 'running' })), releasePlaces(r)]);
    return { cluster: args.name, user: args.user, id: c.id, nodes: c.nodes.length, hosts: [...new Set(c.nodes.map((n) => n.host))].sort() };
  },
  async undo(r) {
    const s = await createSetting(r);
    if (isPart(r)) {
      // This host's nodes of the parent's cluster; the addresses and record are the parent's.
      const c = s.existing?.op === r.op.parent ? s.existing : null;
      if (c) await removeClusterParts(r, s, c.user, c.id, false);
      return;
    }
    await undoParts(r);
    // Nothing is made before the record: no record of this operation, nothing to undo but a subnet it may have taken.
    const c = s.existing?.op === r.op.id ? s.existing : null;
    if (c) {
      await removeClusterParts(r, s, c.user, c.id);
      await s.repo.remove(c.user, c.name);
    }
    await s.repo.releaseSubnetIfUnused(s.args.user);
    await releasePlaces(r);
  },
};
