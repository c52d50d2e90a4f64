import { readdir, stat } from 'node:fs/promises';
import { ConflictError } from '../../../core/errors.js';
import { pathExists, spaceOf } from '../../mounts.js';
import type { Runner } from '../../runner.js';
import { treeTransfer } from '../tree/transfer.js';
import { dirPrimitives, treeDots } from '../tree/dots.js';
import { missingStatus, type EnsureAction, type PoolRecord, type PoolSpec, type PoolStatus, type StorageDriver, type VolumeInfo } from '../driver.js';

/** Marks a directory as a knarr pool, so destroy never removes a folder knarr did not make. */
export const DIR_MARKER = '.knarr-pool';

/** A plain directory: no snapshots, clones are full copies. For hosts without ZFS or btrfs. */
export const dirDriver: StorageDriver = {
  name: 'dir',
  caps: { cowClone: false, snapshots: false, sendReceive: false, devices: false, directory: true, overlayUpper: true },
  tools: [],
  memberType: null,

  async ensurePool(spec: PoolSpec, runner: Runner): Promise<EnsureAction> {
    const path = spec.path ?? spec.mountpoint;
    const marker = `${path}/${DIR_MARKER}`;
    if (await pathExists(marker)) return 'exists';
    if (await pathExists(path)) {
      if (!(await stat(path)).isDirectory()) throw new ConflictError(`${path} exists and is not a directory`);
      if ((await readdir(path)).length > 0 && !spec.force) {
        throw new ConflictError(`refusing to use ${path} for pool ${spec.name}: the directory is not empty`, {
          hint: 'pass --force to use it anyway, or choose an empty --path',
        });
      }
    }
    await runner.mkdirp(path);
    await runner.run(['touch', marker]);
    return 'created';
  },

  async poolStatus(record: PoolRecord, _runner: Runner): Promise<PoolStatus> {
    if (!(await pathExists(`${record.mountpoint}/${DIR_MARKER}`))) return missingStatus(record);
    return { ...missingStatus(record, 'ONLINE'), online: true, ...(await spaceOf(record.mountpoint)) };
  },

  async destroyPool(record: PoolRecord, runner: Runner): Promise<void> {
    if (await pathExists(`${record.mountpoint}/${DIR_MARKER}`)) await runner.run(['rm', '-rf', '--one-file-system', record.mountpoint]);
  },

  async ensureVolume(record: PoolRecord, volume: string, runner: Runner): Promise<VolumeInfo> {
    const path = `${record.mountpoint}/${volume}`;
    if (await pathExists(path)) return { path, created: false };
    await runner.mkdirp(path);
    return { path, created: true };
  },

  async removeVolume(record: PoolRecord, volume: string, runner: Runner): Promise<void> {
    const path = `${record.mountpoint}/${volume}`;
    if (await pathExists(path)) await runner.run(['rm', '-rf', '--one-file-system', path]);
  },

  dots: (runner: Runner) => treeDots(runner, dirPrimitives),
  transfer: (runner: Runner) => treeTransfer(runner, dirPrimitives, 'tar'),
};
