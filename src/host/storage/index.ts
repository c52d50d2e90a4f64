import { btrfsDriver } from './btrfs/pool.js';
import { dirDriver } from './dir/pool.js';
import type { DriverName, StorageDriver } from './driver.js';
import { lvmDriver } from './lvm/pool.js';
import { zfsDriver } from './zfs/pool.js';

/** Every storage driver, by name. */
export const drivers: Readonly<Record<DriverName, StorageDriver>> = Object.freeze({
  zfs: zfsDriver,
  btrfs: btrfsDriver,
  lvm: lvmDriver,
  dir: dirDriver,
});

export * from './driver.js';
