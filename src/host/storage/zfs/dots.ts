import type { CommitRecord } from '../../../core/dots.js';
import { ConflictError, ExternalCommandError, NotFoundError } from '../../../core/errors.js';
import { pathExists } from '../../mounts.js';
import type { Runner } from '../../runner.js';
import { clearMountPath, DOTS_DIR, runRetryingBusy, subdirsOf } from '../common.js';
import type { DotFsRef, DotStorage, PoolRecord } from '../driver.js';

/** Where a pull receives before it moves what it got into DOTS_DIR. */
export const INCOMING_DIR = 'knarr-incoming';

const COMMIT_PROP = 'knarr:commit';

/** Read-only clones of commits, open while a status or diff reads them: <pool>/knarr-peek/<dot>.<commit>.<pid>.<n>. */
export const PEEK_DIR = 'knarr-peek';
let peeks = 0;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const base = (pool: PoolRecord) => `${pool.name}/${DOTS_DIR}`;
const dataset = (ref: DotFsRef) => `${base(ref.pool)}/${ref.dot}/${ref.branch}`;

/** Parses `zfs list -H -t snapshot -o name,knarr:commit` lines into commit records. */
export function parseSnapshotCommits(text: string): CommitRecord[] {
  const out: CommitRecord[] = [];
  for (const line of text.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const value = line.slice(tab + 1);
    if (value === '-' || value === '') continue;
    try {
      out.push(JSON.parse(value) as CommitRecord);
    } catch {
      /* a snapshot knarr did not make */
    }
  }
  return out;
}

/** The names of the filesystems directly under parent; none when parent is not there. */
export async function childDatasets(runner: Runner, parent: string): Promise<string[]> {
  const r = await runner.run(['zfs', 'list', '-H', '-o', 'name', '-d', '1', '-t', 'filesystem', parent], { mutates: false, okExitCodes: [1] });
  return r.exitCode !== 0
    ? []
    : r.stdout
        .split('\n')
        .filter((n) => n.startsWith(`${parent}/`))
        .map((n) => n.slice(parent.length + 1));
}

/** Dots on ZFS: a dataset per branch under <pool>/knarr-dots/<dot>/, a snapshot per commit. */
export function zfsDots(runner: Runner): DotStorage {
  const exists = async (name: string) => (await runner.run(['zfs', 'list', '-H', '-o', 'name', name], { mutates: false, okExitCodes: [1] })).exitCode === 0;
  const children = (parent: string) => childDatasets(runner, parent);
  const mounted = async (name: string): Promise<boolean | null> => {
    const r = await runner.run(['zfs', 'list', '-H', '-o', 'mounted', name], { mutates: false, okExitCodes: [1] });
    return r.exitCode !== 0 ? null : r.stdout.trim() === 'yes';
  };
  // A pull killed between `zfs umount` and `zfs mount` leaves a dataset unmounted, and its path free for stray writes.
  const mountAgain = async (name: string, path: string): Promise<string | null> => {
    if ((await mounted(name)) !== false) return null;
    const aside = await clearMountPath(runner, path);
    await runRetryingBusy(runner, ['zfs', 'mount', name]);
    return aside;
  };
  const destroyPeek = async (name: string) => {
    for (let attempt = 1; ; attempt++) {
      const r = await runner.run(['zfs', 'destroy', name], { mutates: false, okExitCodes: [1] });
      if (r.exitCode === 0 || !/busy/.test(r.stderr) || attempt >= 20) return;
      await new Promise((res) => setTimeout(res, 250));
    }
  };
  return {
    branchPath: (ref) => `${ref.pool.mountpoint}/${DOTS_DIR}/${ref.dot}/${ref.branch}`,
    async branchState(ref) {
      const m = await mounted(dataset(ref));
      return m === null ? 'missing' : m ? 'ready' : 'unmounted';
    },
    async restoreBranch(ref, head, subdirs) {
      const root = `${base(ref.pool)}/${ref.dot}`;
      const path = this.branchPath(ref);
      const state = await this.branchState(ref);
      if (state === 'ready') return { action: 'exists', movedAside: null };
      const asides = [
        await mountAgain(base(ref.pool), `${ref.pool.mountpoint}/${DOTS_DIR}`),
        await mountAgain(root, `${ref.pool.mountpoint}/${DOTS_DIR}/${ref.dot}`),
      ];
      if (state === 'unmounted') {
        asides.push(await mountAgain(dataset(ref), path));
        return { action: 'mounted', movedAside: asides.find((a) => a !== null) ?? null };
      }
      asides.push(await clearMountPath(runner, path));
      // A pull killed after recording a branch it received into staging, before moving it into place: finish the move.
      const staged = `${ref.pool.name}/${INCOMING_DIR}/${ref.dot}/${ref.branch}`;
      if (head !== null && (await exists(`${staged}@${head}`))) {
        if (await mounted(staged)) await runRetryingBusy(runner, ['zfs', 'umount', staged]);
        if ((await mounted(root)) === null) await runner.run(['zfs', 'create', '-p', root]);
        await runRetryingBusy(runner, ['zfs', 'rename', staged, dataset(ref)]);
        await runRetryingBusy(runner, ['zfs', 'mount', dataset(ref)]);
        return { action: 'rebuilt', movedAside: asides.find((a) => a !== null) ?? null };
      }
      if (head === null) {
        await this.createBranch(ref, subdirs);
      } else {
        const r = await runner.run(['zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', root], { mutates: false, okExitCodes: [1] });
        const snapshot = r.stdout.split('\n').find((n) => n.endsWith(`@${head}`));
        if (!snapshot)
          throw new NotFoundError(`branch ${ref.branch} of dot ${ref.dot} is gone from pool ${ref.pool.name}, and so is its head commit ${head}`, {
            hint: `pull it again, or remove the dot: knarr dot rm ${ref.dot}`,
          });
        if ((await mounted(root)) === null) await runner.run(['zfs', 'create', '-p', root]);
        await runner.run(['zfs', 'clone', snapshot, dataset(ref)]);
        // The branch takes the history up to its head (as a pull that renamed it away had it): later rollbacks and incremental receives need those snapshots.
        await runRetryingBusy(runner, ['zfs', 'promote', dataset(ref)]);
        for (const d of subdirs) await runner.mkdirp(`${path}/${d}`);
      }
      return { action: 'rebuilt', movedAside: asides.find((a) => a !== null) ?? null };
    },
    dotExists: (pool, dot) => exists(`${base(pool)}/${dot}`),
    async listDots(pool) {
      return children(base(pool));
    },
    async listBranches(pool, dot) {
      return children(`${base(pool)}/${dot}`);
    },
    async listSubdirs(ref) {
      return subdirsOf(`${ref.pool.mountpoint}/${DOTS_DIR}/${ref.dot}/${ref.branch}`);
    },

    async createBranch(ref, subdirs) {
      await runner.run(['zfs', 'create', '-p', dataset(ref)]);
      for (const d of subdirs) await runner.mkdirp(`${this.branchPath(ref)}/${d}`);
    },
    async ensureSubdir(ref, subdir) {
      await runner.mkdirp(`${this.branchPath(ref)}/${subdir}`);
    },
    async commit(ref, commit) {
      await runner.run(['zfs', 'snapshot', '-o', `${COMMIT_PROP}=${JSON.stringify(commit)}`, `${dataset(ref)}@${commit.id}`]);
    },
    async dropCommit(ref, id) {
      if (await exists(`${dataset(ref)}@${id}`)) await runRetryingBusy(runner, ['zfs', 'destroy', `${dataset(ref)}@${id}`]);
    },
    async diskCommits(pool, dot) {
      const root = `${base(pool)}/${dot}`;
      if (!(await exists(root))) return [];
      const r = await runner.run(['zfs', 'list', '-H', '-t', 'snapshot', '-o', `name,${COMMIT_PROP}`, '-r', root], { mutates: false });
      return parseSnapshotCommits(r.stdout).filter((c) => c.dot === dot);
    },
    async branchFrom(src, commit, dst) {
      if (!(await exists(`${base(dst.pool)}/${dst.dot}`))) await runner.run(['zfs', 'create', '-p', `${base(dst.pool)}/${dst.dot}`]);
      await runner.run(['zfs', 'clone', `${dataset(src)}@${commit}`, dataset(dst)]);
    },
    async rollback(ref, to, newer) {
      try {
        await runner.run(['zfs', 'rollback', ...(newer.length > 0 ? ['-r'] : []), `${dataset(ref)}@${to}`]);
      } catch (e) {
        if (e instanceof ExternalCommandError && /clone/i.test(e.stderr)) {
          throw new ConflictError(`cannot drop the newer commits of ${ref.dot}: a branch or a cloned dot was made from one of them`, {
            hint: 'remove that branch or dot first',
            cause: e,
          });
        }
        throw e;
      }
    },
    async openCommit(pool, dot, id) {
      const r = await runner.run(['zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', `${base(pool)}/${dot}`], { mutates: false, okExitCodes: [1] });
      const snapshot = r.stdout.split('\n').find((n) => n.endsWith(`@${id}`));
      if (!snapshot) throw new NotFoundError(`commit ${id} of dot ${dot} has no snapshot on pool ${pool.name}`);
      const mountpoint = async (name: string) => (await runner.run(['zfs', 'get', '-H', '-o', 'value', 'mountpoint', name], { mutates: false })).stdout.trim();
      // Kernel ZFS shows each snapshot under .zfs/snapshot; zfs-fuse has no such folder (and no `zfs diff`), so a read-only clone stands in.
      const shown = `${await mountpoint(snapshot.slice(0, snapshot.indexOf('@')))}/.zfs/snapshot/${id}`;
      if (await pathExists(shown)) return { path: shown, close: async () => {} };
      // Clones a killed status left behind would pin their snapshots (a rollback refuses): drop them first.
      for (const name of await children(`${pool.name}/${PEEK_DIR}`)) {
        const pid = Number(name.split('.')[2]);
        if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) await destroyPeek(`${pool.name}/${PEEK_DIR}/${name}`);
      }
      const parent = `${pool.name}/${PEEK_DIR}`;
      const peek = `${parent}/${dot}.${id}.${process.pid}.${peeks++}`;
      // Only a read, though it makes a dataset (so it runs under --dry-run too): closing destroys it, and its parent once empty.
      const close = async () => {
        await destroyPeek(peek);
        await destroyPeek(parent);
      };
      // Another command may drop the empty parent between the clone's -p and the clone: once more then.
      for (let attempt = 1; ; attempt++) {
        const r = await runner.run(['zfs', 'clone', '-p', '-o', 'readonly=on', snapshot, peek], { mutates: false, okExitCodes: attempt < 3 ? [1] : [] });
        if (r.exitCode === 0) break;
      }
      try {
        return { path: await mountpoint(peek), close };
      } catch (e) {
        await close();
        throw e;
      }
    },
    // A commit's snapshot is made with its record in one command, and snapshots knarr did not make are the operator's: none is a leftover.
    leftovers: async () => [],
    async removeLeftover() {
      /* nothing is ever listed */
    },
    async destroyDot(pool, dot) {
      const root = `${base(pool)}/${dot}`;
      if (!(await exists(root))) return;
      // Another dot cloned from this one depends on its snapshots: hand them over before destroying.
      // A promote moves a clone only one origin up (a clone of a branch then hangs off master): repeat until none depends on the dot.
      for (let pass = 0; ; pass++) {
        const r = await runner.run(['zfs', 'list', '-H', '-o', 'name,origin', '-t', 'filesystem', '-r', base(pool)], { mutates: false });
        const dependents = r.stdout
          .split('\n')
          .map((line) => line.split('\t'))
          .filter(([name, origin]) => name && origin && !name.startsWith(`${root}/`) && origin.startsWith(`${root}/`))
          .map(([name]) => name!);
        if (dependents.length === 0) break;
        if (pass >= 64) throw new ConflictError(`cannot detach ${dependents.join(', ')} from dot ${dot}: zfs promote does not move its origin`);
        for (const name of dependents) await runner.run(['zfs', 'promote', name]);
        if (runner.dryRun) break;
      }
      await runRetryingBusy(runner, ['zfs', 'destroy', '-R', root]);
    },
  };
}
