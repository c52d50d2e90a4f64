import { formatSize } from '../../core/size.js';
import type { PoolStatus } from '../../host/storage/driver.js';

export function poolRow(s: PoolStatus): string[] {
  return [s.name, s.driver, s.health, formatSize(s.sizeBytes), formatSize(s.usedBytes), formatSize(s.freeBytes), s.mountpoint, sourcesText(s)];
}

export const POOL_COLUMNS = ['NAME', 'DRIVER', 'HEALTH', 'SIZE', 'USED', 'FREE', 'MOUNTPOINT', 'SOURCES'];

/** The columns of pool list that only -o wide shows. */
export const POOL_WIDE = ['SOURCES', 'CREATED'];

const sourcesText = (s: PoolStatus) => (s.loopFile ? `loop file ${s.loopFile}` : s.devices.length > 0 ? s.devices.join(', ') : 'directory');

export function poolFields(s: PoolStatus): [string, string][] {
  return [
    ['name', s.name],
    ['driver', s.driver],
    ['health', s.health],
    ['size', formatSize(s.sizeBytes)],
    ['used', formatSize(s.usedBytes)],
    ['free', formatSize(s.freeBytes)],
    ['mountpoint', s.mountpoint],
    ['sources', sourcesText(s)],
  ];
}
