import { PrerequisiteError, NotFoundError, UserError } from '../../core/errors.js';
import type { ClusterRecord } from '../../core/cluster.js';
import type { PoolRecord } from '../../core/pool.js';
import { listPoolRecords, readPoolRecord } from '../../host/local-state.js';
import { Lxc } from '../../host/lxc.js';
import { fleetKeys } from '../../state/keys.js';
import type { Store } from '../../state/store.js';
import type { Context } from '../types.js';

/** A base image on a host: its rootfs on the pool, read-only under every node that uses it. */
export interface ImageRecord {
  name: string;
  host: string;
  pool: string;
  rootfs: string;
  source: string;
  createdAt: string;
}

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
  if (!pool) throw new NotFoundError(`this host has no pool ${poolName}`, { hint: 'make one with: knarr pool init --driver btrfs (or dir), or name another with --pool' });
  if (!ctx.drivers[pool.driver].caps.overlayUpper) {
    const able = (await listPoolRecords(ctx.config.stateDir)).filter((p) => ctx.drivers[p.driver].caps.overlayUpper);
    throw new PrerequisiteError(`pool ${poolName} (${pool.driver}) cannot hold cluster nodes: overlayfs refuses it as an upper layer (zfs-fuse has no xattrs)`, {
      hint: able.length > 0 ? `pools that can: ${able.map((p) => p.name).join(', ')}; pick one with --pool` : 'keep clusters on a btrfs, lvm or dir pool: knarr pool init --name nodes --driver btrfs, then --pool nodes',
    });
  }
  // LXC's config splits mount entries on spaces and overlay paths on ":": such a path would mount the wrong thing.
  if (/[\s:]/.test(pool.mountpoint)) {
    throw new PrerequisiteError(`pool ${pool.name} is mounted at ${JSON.stringify(pool.mountpoint)}: a path with a space or ":" cannot go into an LXC config`, { hint: 'keep clusters on a pool mounted at a plain path' });
  }
  return pool;
}

export const imageVolume = (name: string) => `knarr-images/${name}`;
export const nodeVolume = (container: string) => `knarr-clusters/${container}`;
/** The user's files on the pool: data (shared at /nfs), ssh (authorized_keys at /root/.ssh), one hosts file per cluster. */
export const userDir = (pool: PoolRecord, user: string) => `${pool.mountpoint}/knarr-users/${user}`;
export const hostsPath = (pool: PoolRecord, user: string, id: number) => `${userDir(pool, user)}/hosts/${id}`;

export const lxcFor = (ctx: Context) => new Lxc(ctx.runner, `${ctx.config.stateDir}/lxc`);

/** Images and clusters in the fleet store. */
export class ClusterRepo {
  private readonly keys;
  constructor(
    readonly store: Store,
    fleet: string,
  ) {
    this.keys = fleetKeys(fleet);
  }
  async image(host: string, name: string): Promise<ImageRecord | null> {
    const v = await this.store.get(this.keys.hostImage(host, name));
    return v === null ? null : (JSON.parse(v) as ImageRecord);
  }
  async images(host: string): Promise<ImageRecord[]> {
    return (await this.store.list(this.keys.hostImages(host))).map((kv) => JSON.parse(kv.value) as ImageRecord);
  }
  putImage(i: ImageRecord): Promise<void> {
    return this.store.put(this.keys.hostImage(i.host, i.name), JSON.stringify(i));
  }
  async removeImage(host: string, name: string): Promise<void> {
    await this.store.delete(this.keys.hostImage(host, name));
  }
  async get(user: string, name: string): Promise<ClusterRecord | null> {
    const v = await this.store.get(this.keys.cluster(user, name));
    return v === null ? null : (JSON.parse(v) as ClusterRecord);
  }
  async list(): Promise<ClusterRecord[]> {
    return (await this.store.list(this.keys.clusters)).map((kv) => JSON.parse(kv.value) as ClusterRecord);
  }
  create(c: ClusterRecord): Promise<boolean> {
    return this.store.createIfAbsent(this.keys.cluster(c.user, c.name), JSON.stringify(c));
  }
  put(c: ClusterRecord): Promise<void> {
    return this.store.put(this.keys.cluster(c.user, c.name), JSON.stringify({ ...c, updatedAt: new Date().toISOString() }));
  }
  async remove(user: string, name: string): Promise<void> {
    await this.store.delete(this.keys.cluster(user, name));
  }
}
