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
  /** Versioned filesystems for dots on this driver's pools. */
  dots(runner: Runner): DotStorage;
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

/** One branch filesystem of a dot on a pool. */
export interface DotFsRef {
  pool: PoolRecord;
  dot: string;
  branch: string;
}

/**
 * Versioned filesystems for dots: one writable filesystem per branch, a read-only snapshot per
 * commit, and each commit's record kept on disk beside it (ZFS user properties, else a sidecar file).
 */
export interface DotStorage {
  branchPath(ref: DotFsRef): string;
  dotExists(pool: PoolRecord, dot: string): Promise<boolean>;
  /** A new, empty branch filesystem holding the given subdot directories. */
  createBranch(ref: DotFsRef, subdirs: string[]): Promise<void>;
  ensureSubdir(ref: DotFsRef, subdir: string): Promise<void>;
  commit(ref: DotFsRef, commit: import('../../core/dots.js').CommitRecord): Promise<void>;
  /** Every commit record found on disk for the dot. */
  diskCommits(pool: PoolRecord, dot: string): Promise<import('../../core/dots.js').CommitRecord[]>;
  /** A writable branch dst starting from commit of src (copy-on-write where the driver can). */
  branchFrom(src: DotFsRef, commit: string, dst: DotFsRef): Promise<void>;
  /** Drops the given newer commits, then puts the branch back to commit `to`. */
  rollback(ref: DotFsRef, to: string, newer: string[]): Promise<void>;
  destroyDot(pool: PoolRecord, dot: string): Promise<void>;
}
