import { readdir, rm, stat } from 'node:fs/promises';
import { NotFoundError } from '../../../core/errors.js';
import { pathExists } from '../../mounts.js';
import type { Runner } from '../../runner.js';
import { clearMountPath, DOTS_DIR, readCommitRecords, subdirsOf, writeCommitRecord } from '../common.js';
import type { DotFsRef, DotStorage, Leftover, PoolRecord } from '../driver.js';

/** How a tree-layout driver makes, copies and deletes a filesystem. */
export interface TreePrimitives {
  create(runner: Runner, path: string): Promise<void>;
  /** A copy of src at dst; read-only when it is a commit. */
  copy(runner: Runner, src: string, dst: string, readOnly: boolean): Promise<void>;
  remove(runner: Runner, path: string): Promise<void>;
  /** The path is a filesystem of this kind (not a plain folder standing in for one). */
  isFilesystem(path: string): Promise<boolean>;
}

/** The root of a btrfs subvolume always has inode 256. */
const BTRFS_SUBVOLUME_INO = 256;

export const btrfsPrimitives: TreePrimitives = {
  create: async (runner, path) => void (await runner.run(['btrfs', 'subvolume', 'create', path])),
  copy: async (runner, src, dst, readOnly) => void (await runner.run(['btrfs', 'subvolume', 'snapshot', ...(readOnly ? ['-r'] : []), src, dst])),
  remove: async (runner, path) => void (await runner.run(['btrfs', 'subvolume', 'delete', path])),
  isFilesystem: async (path) => (await stat(path)).ino === BTRFS_SUBVOLUME_INO,
};

export const dirPrimitives: TreePrimitives = {
  create: (runner, path) => runner.mkdirp(path),
  copy: async (runner, src, dst) => void (await runner.run(['cp', '-a', '--reflink=auto', src, dst])),
  remove: async (runner, path) => void (await runner.run(['rm', '-rf', '--one-file-system', path])),
  isFilesystem: async (path) => (await stat(path)).isDirectory(),
};

/**
 * Dots as a directory tree on a mounted pool (btrfs subvolumes, or plain directories):
 * <pool>/knarr-dots/<dot>/<branch>, commits in .commits/<id>, their records in .knarr/commits/<id>.json.
 */
export function treeDots(runner: Runner, prim: TreePrimitives): DotStorage {
  const dotDir = (pool: PoolRecord, dot: string) => `${pool.mountpoint}/${DOTS_DIR}/${dot}`;
  const commitPath = (pool: PoolRecord, dot: string, id: string) => `${dotDir(pool, dot)}/.commits/${id}`;
  const recordPath = (pool: PoolRecord, dot: string, id: string) => `${dotDir(pool, dot)}/.knarr/commits/${id}.json`;
  const branchPath = (ref: DotFsRef) => `${dotDir(ref.pool, ref.dot)}/${ref.branch}`;
  return {
    branchPath,
    dotExists: async (pool, dot) => pathExists(dotDir(pool, dot)),
    listDots: async (pool) => subdirsOf(`${pool.mountpoint}/${DOTS_DIR}`),
    listBranches: async (pool, dot) => subdirsOf(dotDir(pool, dot)),
    listSubdirs: async (ref) => subdirsOf(branchPath(ref)),

    async createBranch(ref, subdirs) {
      await runner.mkdirp(dotDir(ref.pool, ref.dot));
      await prim.create(runner, branchPath(ref));
      for (const d of subdirs) await runner.mkdirp(`${branchPath(ref)}/${d}`);
    },
    async ensureSubdir(ref, subdir) {
      await runner.mkdirp(`${branchPath(ref)}/${subdir}`);
    },
    async commit(ref, commit) {
      await runner.mkdirp(`${dotDir(ref.pool, ref.dot)}/.commits`);
      await prim.copy(runner, branchPath(ref), commitPath(ref.pool, ref.dot, commit.id), true);
      await writeCommitRecord(runner, recordPath(ref.pool, ref.dot, commit.id), commit, () => this.dropCommit(ref, commit.id));
    },
    async dropCommit(ref, id) {
      if (await pathExists(commitPath(ref.pool, ref.dot, id))) await prim.remove(runner, commitPath(ref.pool, ref.dot, id));
      if (!runner.dryRun) await rm(recordPath(ref.pool, ref.dot, id), { force: true });
    },
    async diskCommits(pool, dot) {
      const dir = `${dotDir(pool, dot)}/.knarr/commits`;
      const records = await readCommitRecords(dir);
      // A record whose snapshot is gone is not a commit on disk.
      const present = await Promise.all(records.map((r) => pathExists(commitPath(pool, dot, r.id))));
      return records.filter((_, i) => present[i]);
    },
    async branchFrom(src, commit, dst) {
      await runner.mkdirp(dotDir(dst.pool, dst.dot));
      await prim.copy(runner, commitPath(src.pool, src.dot, commit), branchPath(dst), false);
    },
    async rollback(ref, to, newer) {
      for (const id of newer) {
        await prim.remove(runner, commitPath(ref.pool, ref.dot, id));
        if (!runner.dryRun) await rm(recordPath(ref.pool, ref.dot, id), { force: true });
      }
      await prim.remove(runner, branchPath(ref));
      await prim.copy(runner, commitPath(ref.pool, ref.dot, to), branchPath(ref), false);
    },
    async leftovers(pool, dot) {
      const dir = dotDir(pool, dot);
      const records = await readdir(`${dir}/.knarr/commits`).catch(() => [] as string[]);
      const snapshots = await readdir(`${dir}/.commits`).catch(() => [] as string[]);
      const recorded = new Set(records.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length)));
      return [
        ...snapshots.filter((id) => !recorded.has(id)).map((id): Leftover => ({ kind: 'orphan-snapshot', path: `${dir}/.commits/${id}` })),
        ...records.filter((n) => n.endsWith('.tmp')).map((n): Leftover => ({ kind: 'temp-file', path: `${dir}/.knarr/commits/${n}` })),
      ];
    },
    async removeLeftover(_pool, l) {
      if (l.kind === 'temp-file') {
        if (!runner.dryRun) await rm(l.path, { force: true });
      } else if (l.path.slice(l.path.lastIndexOf('/') + 1).startsWith('.partial-')) {
        await runner.run(['rm', '-rf', '--one-file-system', l.path]);
      } else {
        await prim.remove(runner, l.path);
      }
    },
    async branchState(ref) {
      if (!(await pathExists(branchPath(ref)))) return 'missing';
      return (await prim.isFilesystem(branchPath(ref))) ? 'ready' : 'unmounted';
    },
    async restoreBranch(ref, head, subdirs) {
      const state = await this.branchState(ref);
      if (state === 'ready') return { action: 'exists', movedAside: null };
      // A plain folder where the branch's subvolume should be (a mkdir -p while it was gone) is cleared, then the branch rebuilt.
      const movedAside = state === 'unmounted' ? await clearMountPath(runner, branchPath(ref)) : null;
      if (head === null) {
        await this.createBranch(ref, subdirs);
      } else {
        if (!(await pathExists(commitPath(ref.pool, ref.dot, head)))) {
          throw new NotFoundError(`branch ${ref.branch} of dot ${ref.dot} is gone from pool ${ref.pool.name}, and so is its head commit ${head}`, {
            hint: `pull it again, or remove the dot: knarr dot rm ${ref.dot}`,
          });
        }
        await prim.copy(runner, commitPath(ref.pool, ref.dot, head), branchPath(ref), false);
        for (const d of subdirs) await runner.mkdirp(`${branchPath(ref)}/${d}`);
      }
      return { action: 'rebuilt', movedAside };
    },
    async openCommit(pool, dot, id) {
      const path = commitPath(pool, dot, id);
      if (!(await pathExists(path))) throw new NotFoundError(`commit ${id} of dot ${dot} has no snapshot on pool ${pool.name}`);
      return { path, close: async () => {} };
    },
    async destroyDot(pool, dot) {
      const dir = dotDir(pool, dot);
      if (!(await pathExists(dir))) return;
      const entries = await readdir(dir, { withFileTypes: true });
      for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.')) await prim.remove(runner, `${dir}/${e.name}`);
      const commits = (await pathExists(`${dir}/.commits`)) ? await readdir(`${dir}/.commits`) : [];
      for (const id of commits) await prim.remove(runner, `${dir}/.commits/${id}`);
      await runner.run(['rm', '-rf', '--one-file-system', dir]);
    },
  };
}
