import { userInfo } from 'node:os';
import { validateUser, type ClusterRecord } from '../../core/cluster.js';
import { PrerequisiteError, NotFoundError, UserError } from '../../core/errors.js';
import type { PoolRecord } from '../../core/pool.js';
import { listPoolRecords, readPoolRecord } from '../../host/local-state.js';
import { Lxc } from '../../host/lxc.js';
import type { ClusterRepo } from '../../state/clusters.js';
import type { Context } from '../types.js';

/** The pool clusters and images live on: it must carry overlayfs upper layers. */
export async function clusterPool(ctx: Context, name: string | undefined): Promise<PoolRecord> {
  let poolName = name ?? ctx.config.pool.name;
  let pool = await readPoolRecord(ctx.config.stateDir, poolName);
  if ((!pool || !ctx.drivers[pool.driver].caps.overlayUpper) && name === undefined) {
    // The configured pool is missing or cannot hold nodes (zfs-fuse): the host's one pool that can, if there is exactly one.
    const able = (await listPoolRecords(ctx.config.stateDir)).filter((p) => ctx.drivers[p.driver].caps.overlayUpper);
    if (able.length === 1) [pool, poolName] = [able[0]!, able[0]!.name];
    else if (able.length > 1) {
      const why = pool ? `pool ${poolName} (${pool.driver}) cannot hold cluster nodes` : `there is no pool ${poolName}`;
      throw new UserError(`${why}, and ${able.length} pools can: ${able.map((p) => `${p.name} (${p.driver})`).join(', ')}; --pool picks one`, {
        hint: `add --pool ${able[0]!.name} (or set pool.name in the config file)`,
        detail: { pools: able.map((p) => p.name) },
      });
    }
  }
  if (!pool)
    throw new NotFoundError(`this host has no pool ${poolName}`, {
      hint: 'make one with: knarr pool init --driver btrfs (or dir), or name another with --pool',
    });
  if (!ctx.drivers[pool.driver].caps.overlayUpper) {
    const able = (await listPoolRecords(ctx.config.stateDir)).filter((p) => ctx.drivers[p.driver].caps.overlayUpper);
    throw new PrerequisiteError(
      `pool ${poolName} (${pool.driver}) cannot hold cluster nodes: overlayfs refuses it as an upper layer (zfs-fuse has no xattrs)`,
      {
        hint:
          able.length > 0
            ? `pools that can: ${able.map((p) => p.name).join(', ')}; pick one with --pool`
            : 'keep clusters on a btrfs, lvm or dir pool: knarr pool init --name nodes --driver btrfs, then --pool nodes',
      },
    );
  }
  // LXC's config splits mount entries on spaces and overlay paths on ":": such a path would mount the wrong thing.
  if (/[\s:]/.test(pool.mountpoint)) {
    throw new PrerequisiteError(`pool ${pool.name} is mounted at ${JSON.stringify(pool.mountpoint)}: a path with a space or ":" cannot go into an LXC config`, {
      hint: 'keep clusters on a pool mounted at a plain path',
    });
  }
  return pool;
}

export const imageVolume = (name: string) => `knarr-images/${name}`;
export const nodeVolume = (container: string) => `knarr-clusters/${container}`;
/** The user's files on the pool: data (shared at /nfs), ssh (authorized_keys at /root/.ssh), one hosts file per cluster. */
export const userDir = (pool: PoolRecord, user: string) => `${pool.mountpoint}/knarr-users/${user}`;
export const hostsPath = (pool: PoolRecord, user: string, id: number) => `${userDir(pool, user)}/hosts/${id}`;

export const lxcFor = (ctx: Context) => new Lxc(ctx.runner, `${ctx.config.stateDir}/lxc`);

/** The cluster's owner: --user, else KNARR_USER, else the caller's login name. */
export function userOf(ctx: Context, user: string | undefined): string {
  return validateUser('--user', user ?? ctx.config.cluster.user ?? userInfo().username);
}

export async function requireCluster(repo: ClusterRepo, user: string, name: string): Promise<ClusterRecord> {
  const c = await repo.get(user, name);
  if (!c) throw new NotFoundError(`user ${user} has no cluster ${name}`, { hint: 'list them with: knarr cluster list' });
  return c;
}
