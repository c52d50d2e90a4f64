import { mkdir, writeFile } from 'node:fs/promises';
import { ConflictError } from '../../../core/errors.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { userDir } from '../common.js';
import { allocateCluster, removeClusterParts, setting, startNodes, writeHosts } from './shared.js';

/** What `knarr cluster create` checked and wrote into the operation. */
export interface CreateArgs {
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
  };
}

const createSetting = (r: OpRun) => setting(r, createArgs(r.op));

/** cluster.create: id, record, subnet and bridge, addresses and hosts file, then each node; undone as a whole. */
export const clusterCreate: OpHandler = {
  async run(r) {
    const s = await createSetting(r);
    const { args } = s;
    // A resumed run finds its id in the record it made; a run cut short before that takes a new one.
    if (s.existing && s.existing.op !== r.op.id) throw new ConflictError(`user ${args.user} already has a cluster ${args.name}`);
    const now = new Date().toISOString();
    const c =
      s.existing ??
      (await allocateCluster(s, r.ctx.config.cluster.network, args.size, {
        name: args.name,
        user: args.user,
        status: 'creating',
        image: args.image,
        pool: s.pool.name,
        host: args.host,
        memory: args.memory,
        cpu: args.cpu,
        op: r.op.id,
        createdAt: now,
        updatedAt: now,
      }));
    const user = userDir(s.pool, args.user);
    await mkdir(`${user}/data`, { recursive: true });
    await mkdir(`${user}/ssh`, { recursive: true, mode: 0o700 });
    if (args.authorizedKeys) await writeFile(`${user}/ssh/authorized_keys`, args.authorizedKeys, { mode: 0o600 });
    await writeHosts(s, c);
    await startNodes(r, s, c, c.nodes, 'starting');
    await s.repo.put({ ...c, status: 'running' });
    return { cluster: args.name, user: args.user, id: c.id, nodes: c.nodes.length };
  },
  async undo(r) {
    const s = await createSetting(r);
    // Nothing is made before the record: no record of this operation, nothing to undo but a subnet it may have taken.
    const c = s.existing?.op === r.op.id ? s.existing : null;
    if (!c) return s.repo.releaseSubnetIfUnused(s.args.user);
    await removeClusterParts(r, s, c.user, c.id);
    await s.repo.remove(c.user, c.name);
    await s.repo.releaseSubnetIfUnused(c.user);
  },
};
