import { btrfsDriver } from './btrfs.js';
import { dirDriver } from './dir.js';
import type { DriverName, StorageDriver } from './driver.js';
import { lvmDriver } from './lvm.js';
import { zfsDriver } from './zfs.js';

/** Every storage driver, by name. */
export const drivers: Readonly<Record<DriverName, StorageDriver>> = Object.freeze({
  zfs: zfsDriver,
  btrfs: btrfsDriver,
  lvm: lvmDriver,
  dir: dirDriver,
});

export * from './driver.js';
