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
  /** Volumes can be the writable upper layer of an overlayfs (LXC cluster nodes); zfs-fuse has no xattrs for it. */
  readonly overlayUpper: boolean;
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
  /** The blkid TYPE of a device holding one of its pools, labelled with the pool's name; null when devices carry no such label. */
  readonly memberType: string | null;
  ensurePool(spec: PoolSpec, runner: Runner): Promise<EnsureAction>;
  poolStatus(record: PoolRecord, runner: Runner): Promise<PoolStatus>;
  destroyPool(record: PoolRecord, runner: Runner): Promise<void>;
  ensureVolume(record: PoolRecord, volume: string, runner: Runner): Promise<VolumeInfo>;
  /** Removes a volume and everything in it; a volume that is not there is fine. */
  removeVolume(record: PoolRecord, volume: string, runner: Runner): Promise<void>;
  /**
   * A new volume to holding what from holds now, copy-on-write (a snapshot); absent on drivers that can only
   * copy. A to that exists already is kept (a resumed clone): the snapshot is made whole or not at all.
   */
  cloneVolume?(record: PoolRecord, from: string, to: string, runner: Runner): Promise<VolumeInfo>;
  /** Versioned filesystems for dots on this driver's pools. */
  dots(runner: Runner): DotStorage;
  transfer(runner: Runner): DotTransfer;
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
  /** In the staging area a pull receives into, invisible until published. */
  staging?: boolean;
}

/** Moves dot commits as streams: what push writes to a remote and pull reads back. */
export interface DotTransfer {
  readonly format: import('../../core/remote.js').StreamFormat;
  /** Streams can carry only the change since a base commit. */
  readonly incremental: boolean;
  /** Each branch filesystem keeps its own copy of its commits (zfs); else commits are shared by the dot's branches. */
  readonly perBranchHistory: boolean;
  /**
   * Readies a send before sendArgv's command runs (lvm: the commit's snapshot mounted read-only, the files changed since
   * base listed); the function it returns undoes that. Absent where the command reads the commit as it is.
   */
  prepareSend?(ref: DotFsRef, commit: string, base: { ref: DotFsRef; id: string } | null): Promise<() => Promise<void>>;
  /** argv writing the commit's stream to stdout, incremental from base (which may sit on another branch). */
  sendArgv(ref: DotFsRef, commit: string, base: { ref: DotFsRef; id: string } | null): string[];
  /** Reads one commit's stream into the dot's commits (base already received); a failed receive leaves the branch at base. */
  receive(
    ref: DotFsRef,
    commit: import('../../core/dots.js').CommitRecord,
    base: string | null,
    input: import('node:stream').Readable,
    source: string,
  ): Promise<void>;
  /** About how many bytes a full stream of the commit holds, for a push's ETA; undefined when unknown (an incremental one). */
  estimateBytes?(ref: DotFsRef, commit: string, base: { ref: DotFsRef; id: string } | null): Promise<number | undefined>;
  /** A receive that failed this way may work when the stream is read again. */
  isTransient?(error: unknown): boolean;
  /** Renames a branch's filesystem (a pull keeps diverged local commits this way). */
  renameBranch(ref: DotFsRef, to: string): Promise<void>;
  /** Makes the branch's writable filesystem show head after receiving. */
  settleBranch(ref: DotFsRef, head: string): Promise<void>;
  /** Moves a dot received into staging to its place under knarr-dots. */
  publish(pool: PoolRecord, dot: string): Promise<void>;
  /** Moves one branch received into staging to its place in the existing dot (where the old one was renamed away), and drops the staging. */
  publishBranch?(pool: PoolRecord, dot: string, branch: string): Promise<void>;
  /** The dot is in its place under knarr-dots with commit head on branch: a pull that published it got that far. */
  holdsPublished(pool: PoolRecord, dot: string, branch: string, head: string): Promise<boolean>;
  /** Drops what an interrupted pull left in staging. */
  discardStaging(pool: PoolRecord, dot: string): Promise<void>;
  /** Dots with something in staging (a pull running, or one cut short). */
  listStaging(pool: PoolRecord): Promise<string[]>;
}

/** A branch filesystem as the host has it: in place, its name there without its filesystem mounted, or gone. */
export type BranchState = 'ready' | 'unmounted' | 'missing';

export interface RestoredBranch {
  action: 'exists' | 'mounted' | 'rebuilt';
  /** Where files found at the branch's path while it was away were moved. */
  movedAside: string | null;
}

/**
 * Versioned filesystems for dots: one writable filesystem per branch, a read-only snapshot per
 * commit, and each commit's record kept on disk beside it (ZFS user properties, else a sidecar file).
 */
export interface DotStorage {
  branchPath(ref: DotFsRef): string;
  dotExists(pool: PoolRecord, dot: string): Promise<boolean>;
  /** Dots the pool holds data for, whatever the store says. */
  listDots(pool: PoolRecord): Promise<string[]>;
  listBranches(pool: PoolRecord, dot: string): Promise<string[]>;
  /** Subdot folders in a branch filesystem. */
  listSubdirs(ref: DotFsRef): Promise<string[]>;
  /** A new, empty branch filesystem holding the given subdot directories. */
  createBranch(ref: DotFsRef, subdirs: string[]): Promise<void>;
  ensureSubdir(ref: DotFsRef, subdir: string): Promise<void>;
  /** Snapshot and record, whole or not at all: a failure removes a snapshot already made. */
  commit(ref: DotFsRef, commit: import('../../core/dots.js').CommitRecord): Promise<void>;
  /** Removes one commit's snapshot and record (a commit the store refused); one that is not there is fine. */
  dropCommit(ref: DotFsRef, id: string): Promise<void>;
  /** Every commit record found on disk for the dot. */
  diskCommits(pool: PoolRecord, dot: string): Promise<import('../../core/dots.js').CommitRecord[]>;
  /** A writable branch dst starting from commit of src (copy-on-write where the driver can). */
  branchFrom(src: DotFsRef, commit: string, dst: DotFsRef): Promise<void>;
  /** Drops the given newer commits, then puts the branch back to commit `to`. */
  rollback(ref: DotFsRef, to: string, newer: string[]): Promise<void>;
  destroyDot(pool: PoolRecord, dot: string): Promise<void>;
  branchState(ref: DotFsRef): Promise<BranchState>;
  /** Puts the branch back at branchPath: mounts it, or rebuilds it from commit head (empty, with subdirs, when null). */
  restoreBranch(ref: DotFsRef, head: string | null, subdirs: string[]): Promise<RestoredBranch>;
  /** What a command cut short (a crash, a full pool) left in the dot's own folders: snapshots without a record, temporary files. */
  leftovers(pool: PoolRecord, dot: string): Promise<Leftover[]>;
  removeLeftover(pool: PoolRecord, leftover: Leftover): Promise<void>;
  /** A commit's files, read-only, until closed (status and diff read them); a commit without a snapshot here is NotFoundError. */
  openCommit(pool: PoolRecord, dot: string, id: string): Promise<CommitTree>;
}

/** Where a commit's read-only tree can be read; close releases what opening it took (a mount, a clone). */
export interface CommitTree {
  path: string;
  close(): Promise<void>;
}

/** A piece of a dot that no commit owns: it only pins space. */
export interface Leftover {
  kind: 'orphan-snapshot' | 'temp-file';
  path: string;
}
