import type { CommitRecord } from '../../core/dots.js';
import { ConflictError, ExternalCommandError } from '../../core/errors.js';
import type { Runner } from '../runner.js';
import { DOTS_DIR, runRetryingBusy, subdirsOf } from './common.js';
import type { DotFsRef, DotStorage, PoolRecord } from './driver.js';

// Kept for modules that import them from here; new code imports them from common.ts.
export { DOTS_DIR, subdirsOf } from './common.js';

const COMMIT_PROP = 'knarr:commit';

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

/** Dots on ZFS: a dataset per branch under <pool>/knarr-dots/<dot>/, a snapshot per commit. */
export function zfsDots(runner: Runner): DotStorage {
  const exists = async (name: string) =>
    (await runner.run(['zfs', 'list', '-H', '-o', 'name', name], { mutates: false, okExitCodes: [1] })).exitCode === 0;
  const children = async (parent: string) => {
    const r = await runner.run(['zfs', 'list', '-H', '-o', 'name', '-d', '1', '-t', 'filesystem', parent], { mutates: false, okExitCodes: [1] });
    return r.exitCode !== 0 ? [] : r.stdout.split('\n').filter((n) => n.startsWith(`${parent}/`)).map((n) => n.slice(parent.length + 1));
  };
  return {
    branchPath: (ref) => `${ref.pool.mountpoint}/${DOTS_DIR}/${ref.dot}/${ref.branch}`,
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
