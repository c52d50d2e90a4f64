import { ConflictError, UserError } from '../../core/errors.js';
import { ETCD_VOLUME, statePaths } from '../../core/paths.js';
import type { PoolRecord } from '../../core/pool.js';
import { isEtcdProcess, type EtcdServerState } from '../../host/etcd-server.js';
import { readJson, removePoolRecord } from '../../host/local-state.js';
import { pathExists, removeEmptyDirs } from '../../host/mounts.js';
import { subdirsOf } from '../../host/storage/common.js';
import type { CommandResult, Context } from '../types.js';
import { thisHost } from '../../daemon/pidfile.js';
import { ClusterRepo } from '../../state/clusters.js';
import { DotRepo } from '../../state/dots.js';
import { hostId } from '../../host/identity.js';
import { withStore } from '../with-store.js';
import { selectPool } from './select.js';

/** What lives on a pool and would go with it: dots, images, cluster volumes, the managed etcd's data. */
async function poolContents(
  ctx: Context,
  record: PoolRecord,
  etcdHere: boolean,
): Promise<{ dots: string[]; images: string[]; clusterVolumes: string[]; etcd: boolean }> {
  // A pool that cannot be read (faulted, gone) shows no dots: destroying it is how its record goes.
  const dots = await ctx.drivers[record.driver]
    .dots(ctx.runner)
    .listDots(record)
    .catch(() => [] as string[]);
  return {
    dots,
    images: await subdirsOf(`${record.mountpoint}/knarr-images`),
    clusterVolumes: await subdirsOf(`${record.mountpoint}/knarr-clusters`),
    etcd: etcdHere || (await pathExists(`${record.mountpoint}/${ETCD_VOLUME}/member`)),
  };
}

/**
 * The records of the dots and images that went with the pool, so no command shows them as there.
 * Only from a store that is up already: destroying a pool never starts the managed etcd. Returns what is left to do by hand.
 */
async function forgetRecords(ctx: Context, pool: string, etcdRunning: boolean): Promise<string | null> {
  if (ctx.config.etcd.length === 0 && !etcdRunning)
    return `their records stay in the stopped etcd: once it runs, drop them with knarr dot rm and knarr image rm`;
  return withStore(ctx, async (store) => {
    const dots = new DotRepo(store, ctx.config.fleet, hostId(), false);
    for (const d of await dots.list()) if (d.pool === pool) await dots.delete(d.name);
    const images = new ClusterRepo(store, ctx.config.fleet);
    const host = await thisHost(ctx.config.stateDir);
    for (const i of await images.images(host)) if (i.pool === pool) await images.removeImage(host, i.name);
    return null;
  });
}

/** `knarr pool destroy POOL --yes [--force]`: destroys the pool and everything on it; one that holds knarr's data needs --force. */
export async function poolDestroy(name: string, opts: { yes: boolean; force: boolean }, ctx: Context): Promise<CommandResult> {
  const record = await selectPool(ctx, name);
  if (!opts.yes && !ctx.runner.dryRun) {
    throw new UserError(`destroying pool ${name} deletes all its data; pass --yes to confirm`, {
      hint: `preview it with: knarr --dry-run pool destroy ${name}`,
    });
  }
  const etcd = await readJson<EtcdServerState>(statePaths(ctx.config.stateDir).etcdState);
  if (etcd?.pool === name && (await isEtcdProcess(etcd.pid))) {
    throw new ConflictError(`the managed etcd keeps its data on pool ${name} and is running`, { hint: 'stop it first with: knarr etcd down' });
  }
  const held = await poolContents(ctx, record, etcd?.pool === name);
  const listed = [
    held.dots.length > 0 && `dots ${held.dots.join(', ')}`,
    held.images.length > 0 && `images ${held.images.join(', ')}`,
    held.clusterVolumes.length > 0 && `cluster volumes ${held.clusterVolumes.join(', ')}`,
    held.etcd && "the managed etcd's data",
  ].filter((x): x is string => typeof x === 'string');
  if (listed.length > 0 && !opts.force) {
    throw new ConflictError(`pool ${name} holds ${listed.join('; ')}`, {
      hint: `remove them first (knarr dot rm, knarr image rm, knarr cluster delete), or destroy them with the pool: knarr pool destroy ${name} --yes --force`,
      detail: held,
    });
  }
  ctx.events.step(`pool ${name}: destroying`);
  await ctx.drivers[record.driver].destroyPool(record, ctx.runner);
  ctx.events.done();
  let left: string | null = null;
  if (!ctx.runner.dryRun) {
    await removePoolRecord(ctx.config.stateDir, name);
    // Whatever the pool was mounted on stays behind empty (zfs, btrfs): it goes too, files never.
    await removeEmptyDirs(record.mountpoint);
    if (held.dots.length > 0 || held.images.length > 0) left = await forgetRecords(ctx, name, etcd !== null && (await isEtcdProcess(etcd.pid)));
    if (left) ctx.events.warn(`pool ${name}: ${left}`);
  } else if (held.dots.length > 0 || held.images.length > 0) {
    ctx.runner.note(`remove the records of ${[...held.dots.map((d) => `dot ${d}`), ...held.images.map((i) => `image ${i}`)].join(', ')} from etcd`);
  }
  return { data: { pool: name, driver: record.driver, destroyed: !ctx.runner.dryRun }, view: { kind: 'lines', lines: [`pool ${name} destroyed`] } };
}
