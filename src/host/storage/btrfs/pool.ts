import { dirname } from 'node:path';
import { ConflictError } from '../../../core/errors.js';
import { mountAt, pathExists, spaceOf } from '../../mounts.js';
import type { Runner } from '../../runner.js';
import { treeTransfer } from '../tree/transfer.js';
import { btrfsPrimitives, treeDots } from '../tree/dots.js';
import { checkForeign, createLoopFile, probeSources, refuseRemake } from '../common.js';
import {
  missingStatus,
  poolSources,
  type EnsureAction,
  type PoolRecord,
  type PoolSpec,
  type PoolStatus,
  type StorageDriver,
  type VolumeInfo,
} from '../driver.js';

function mountArgv(p: { loopFile: unknown }, source: string, mountpoint: string): string[] {
  return ['mount', '-t', 'btrfs', ...(p.loopFile ? ['-o', 'loop'] : []), source, mountpoint];
}

/** btrfs on devices or a loop-mounted image file; volumes are subvolumes. */
export const btrfsDriver: StorageDriver = {
  name: 'btrfs',
  caps: { cowClone: true, snapshots: true, sendReceive: true, devices: true, directory: false, overlayUpper: true },
  tools: ['mkfs.btrfs', 'btrfs', 'mount', 'umount'],
  memberType: 'btrfs',

  async ensurePool(spec: PoolSpec, runner: Runner): Promise<EnsureAction> {
    const mounted = await mountAt(spec.mountpoint);
    if (mounted?.fstype === 'btrfs') {
      // Another pool's btrfs on this mountpoint is not ours: knarr labels every btrfs pool with its name.
      const label = (await runner.run(['btrfs', 'filesystem', 'label', spec.mountpoint], { mutates: false })).stdout.trim();
      if (label === spec.name) return 'exists';
      throw new ConflictError(`${spec.mountpoint} already has btrfs "${label}" mounted from ${mounted.source}, not pool ${spec.name}`, {
        hint: 'give the pool another --mountpoint, or another name',
      });
    }
    if (mounted) {
      throw new ConflictError(`${spec.mountpoint} already has a ${mounted.fstype} filesystem mounted from ${mounted.source}`, {
        hint: 'unmount it, or give the pool another name',
      });
    }
    const sources = poolSources(spec);
    const probes = await probeSources(runner, sources);
    const first = probes[0]!;
    if (first.signature?.type === btrfsDriver.memberType && first.signature.label === spec.name) {
      // Only the pool's own devices: a scan of all of them fails on any unrelated device that cannot be read.
      if (sources.length > 1) await runner.run(['btrfs', 'device', 'scan', ...sources]);
      await runner.mkdirp(spec.mountpoint);
      await runner.run(mountArgv(spec, first.path, spec.mountpoint));
      return 'imported';
    }
    refuseRemake(spec, probes, btrfsDriver.memberType!);
    const forcing = checkForeign(probes, spec.force, spec.name);
    if (spec.loopFile && !first.exists) await createLoopFile(runner, spec.loopFile);
    await runner.run(['mkfs.btrfs', ...(forcing ? ['-f'] : []), '-L', spec.name, ...sources]);
    await runner.mkdirp(spec.mountpoint);
    await runner.run(mountArgv(spec, first.path, spec.mountpoint));
    return 'created';
  },

  async poolStatus(record: PoolRecord, _runner: Runner): Promise<PoolStatus> {
    const mounted = await mountAt(record.mountpoint);
    if (mounted?.fstype !== 'btrfs') {
      const present = await Promise.all(poolSources(record).map(pathExists));
      return missingStatus(record, present.every(Boolean) ? 'UNMOUNTED' : 'MISSING');
    }
    return { ...missingStatus(record, 'ONLINE'), online: true, ...(await spaceOf(record.mountpoint)) };
  },

  async destroyPool(record: PoolRecord, runner: Runner): Promise<void> {
    const mounted = await mountAt(record.mountpoint);
    if (mounted?.fstype === 'btrfs') await runner.run(['umount', record.mountpoint]);
    if (record.loopFile) {
      if (await pathExists(record.loopFile.path)) await runner.run(['rm', '-f', record.loopFile.path]);
      return;
    }
    // Without wiping, a later init would find the old label and import the old data.
    for (const dev of record.devices) if (await pathExists(dev)) await runner.run(['wipefs', '-a', dev]);
  },

  async ensureVolume(record: PoolRecord, volume: string, runner: Runner): Promise<VolumeInfo> {
    const path = `${record.mountpoint}/${volume}`;
    if (await pathExists(path)) return { path, created: false };
    await runner.mkdirp(dirname(path));
    await runner.run(['btrfs', 'subvolume', 'create', path]);
    return { path, created: true };
  },

  async removeVolume(record: PoolRecord, volume: string, runner: Runner): Promise<void> {
    const path = `${record.mountpoint}/${volume}`;
    if (await pathExists(path)) await runner.run(['btrfs', 'subvolume', 'delete', path]);
  },

  async cloneVolume(record: PoolRecord, from: string, to: string, runner: Runner): Promise<VolumeInfo> {
    const path = `${record.mountpoint}/${to}`;
    if (await pathExists(path)) return { path, created: false };
    await runner.mkdirp(dirname(path));
    await runner.run(['btrfs', 'subvolume', 'snapshot', `${record.mountpoint}/${from}`, path]);
    return { path, created: true };
  },

  dots: (runner: Runner) => treeDots(runner, btrfsPrimitives),
  transfer: (runner: Runner) => treeTransfer(runner, btrfsPrimitives, 'btrfs'),
};
