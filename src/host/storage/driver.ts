import type { DriverName, LoopFileSpec, PoolRecord, PoolSpec } from '../../core/pool.js';
import type { Runner } from '../runner.js';

export { DRIVER_NAMES, type DriverName, type LoopFileSpec, type PoolRecord, type PoolSpec } from '../../core/pool.js';

/** What a driver can do; callers branch on these, never on the driver's name. */
export interface DriverCaps {
  /** Clones share blocks with their origin (constant time, no copy). */
  readonly cowClone: boolean;
  readonly snapshots: boolean;
  /** Snapshots can be serialised to a stream and received elsewhere. */
  readonly sendReceive: boolean;
  /** Pools are built on block devices or image files. */
  readonly devices: boolean;
  /** Pools are a plain directory given with --path. */
  readonly directory: boolean;
}

export type EnsureAction = 'created' | 'imported' | 'exists';

export interface PoolStatus {
  name: string;
  driver: DriverName;
  /** ONLINE, DEGRADED, FAULTED, ... as the driver reports it; MISSING when the pool is not on this host. */
  health: string;
  online: boolean;
  sizeBytes: number | null;
  usedBytes: number | null;
  freeBytes: number | null;
  mountpoint: string;
  devices: string[];
  loopFile: string | null;
}

export interface VolumeInfo {
  path: string;
  created: boolean;
}

/** One storage backend. Methods throw typed errors; under --dry-run they record instead of change. */
export interface StorageDriver {
  readonly name: DriverName;
  readonly caps: DriverCaps;
  /** Outside binaries the driver runs (for doctor and hints). */
  readonly tools: readonly string[];
  ensurePool(spec: PoolSpec, runner: Runner): Promise<EnsureAction>;
  poolStatus(record: PoolRecord, runner: Runner): Promise<PoolStatus>;
  destroyPool(record: PoolRecord, runner: Runner): Promise<void>;
  ensureVolume(record: PoolRecord, volume: string, runner: Runner): Promise<VolumeInfo>;
}

/** Vdevs or sources of a pool: its devices, else its loop file. */
export function poolSources(p: { devices: string[]; loopFile: LoopFileSpec | null }): string[] {
  return p.loopFile ? [p.loopFile.path] : p.devices;
}

export function missingStatus(record: PoolRecord, health = 'MISSING'): PoolStatus {
  return {
    name: record.name,
    driver: record.driver,
    health,
    online: false,
    sizeBytes: null,
    usedBytes: null,
    freeBytes: null,
    mountpoint: record.mountpoint,
    devices: record.devices,
    loopFile: record.loopFile?.path ?? null,
  };
}
