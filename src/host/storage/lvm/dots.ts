import { mkdtemp, readdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { pathExists } from '../../mounts.js';
import type { Runner } from '../../runner.js';
import { NotFoundError } from '../../../core/errors.js';
import { clearMountPath, DOTS_DIR, readCommitRecords, subdirsOf, THIN_POOL, writeCommitRecord } from '../common.js';
import type { DotFsRef, DotStorage, Leftover, PoolRecord } from '../driver.js';

/** Size of a branch's thin volume: thin, so only what is written takes space. */
export const BRANCH_SIZE = '10G';
/** LV names: "." cannot appear in dot, branch or commit names, so it separates them without ambiguity. */
export const branchLv = (dot: string, branch: string) => `kd.${dot}.${branch}`;
export const commitLv = (dot: string, id: string) => `kc.${dot}.${id}`;

/** What LVM and the mount table say, asked of lvs and findmnt (not read from /proc) so the argv-level fakes can answer too. */
export function lvmProbes(runner: Runner): { lvNames(pool: PoolRecord): Promise<string[]>; mounted(path: string): Promise<boolean> } {
  return {
    async lvNames(pool) {
      const r = await runner.run(['lvs', '--noheadings', '-o', 'lv_name', pool.name], { mutates: false, okExitCodes: [5] });
      return r.exitCode === 0
        ? r.stdout
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean)
        : [];
    },
    mounted: async (path) => (await runner.run(['findmnt', '-n', '-o', 'SOURCE', '--mountpoint', path], { mutates: false, okExitCodes: [1] })).exitCode === 0,
  };
}

/** Folders of sends (a commit's snapshot mounted to be read) in a dot; with onlyDead, those of processes that are gone (a push killed). */
export async function sendFolders(dotPath: string, onlyDead: boolean): Promise<string[]> {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  const dir = `${dotPath}/.knarr/send`;
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => !onlyDead || !alive(Number(n.slice(n.lastIndexOf('.') + 1)))).map((n) => `${dir}/${n}`);
}

/**
 * Dots on LVM: a thin volume (ext4) per branch mounted under <pool mountpoint>/knarr-dots/<dot>/<branch>,
 * a read-only thin snapshot per commit, records in <dot>/.knarr/commits/<id>.json beside them.
 */
export function lvmDots(runner: Runner): DotStorage {
  const dotDir = (pool: PoolRecord, dot: string) => `${pool.mountpoint}/${DOTS_DIR}/${dot}`;
  const branchPath = (ref: DotFsRef) => `${dotDir(ref.pool, ref.dot)}/${ref.branch}`;
  const recordPath = (pool: PoolRecord, dot: string, id: string) => `${dotDir(pool, dot)}/.knarr/commits/${id}.json`;
  const vgPath = (pool: PoolRecord, lv: string) => `${pool.name}/${lv}`;
  const { lvNames, mounted } = lvmProbes(runner);
  const mountBranch = async (ref: DotFsRef) => {
    if (await mounted(branchPath(ref))) return;
    await runner.mkdirp(branchPath(ref));
    await runner.run(['mount', `/dev/${vgPath(ref.pool, branchLv(ref.dot, ref.branch))}`, branchPath(ref)]);
  };
  const unmountBranch = async (ref: DotFsRef) => {
    if (await mounted(branchPath(ref))) await runner.run(['umount', branchPath(ref)]);
  };
  // A writable branch from a commit's snapshot; thin snapshots skip activation unless told (-K).
  const branchFromSnapshot = async (pool: PoolRecord, dot: string, id: string, dst: DotFsRef) => {
    const lv = vgPath(dst.pool, branchLv(dst.dot, dst.branch));
    await runner.run(['lvcreate', '-y', '-s', '-p', 'rw', '-n', branchLv(dst.dot, dst.branch), vgPath(pool, commitLv(dot, id))]);
    await runner.run(['lvchange', '-ay', '-K', lv]);
    await mountBranch(dst);
  };
  return {
    branchPath,
    dotExists: async (pool, dot) => (await lvNames(pool)).some((n) => n.startsWith(`kd.${dot}.`)),
    listDots: async (pool) => [...new Set((await lvNames(pool)).filter((n) => n.startsWith('kd.')).map((n) => n.split('.')[1]!))].sort(),
    listBranches: async (pool, dot) =>
      (await lvNames(pool))
        .filter((n) => n.startsWith(`kd.${dot}.`))
        .map((n) => n.slice(`kd.${dot}.`.length))
        .sort(),
    listSubdirs: (ref) => subdirsOf(branchPath(ref)),

    async createBranch(ref, subdirs) {
      const lv = branchLv(ref.dot, ref.branch);
      await runner.run(['lvcreate', '-y', '-V', BRANCH_SIZE, '-T', vgPath(ref.pool, THIN_POOL), '-n', lv]);
      await runner.run(['mkfs.ext4', '-q', `/dev/${vgPath(ref.pool, lv)}`]);
      await mountBranch(ref);
      for (const d of subdirs) await runner.mkdirp(`${branchPath(ref)}/${d}`);
    },
    async ensureSubdir(ref, subdir) {
      await runner.mkdirp(`${branchPath(ref)}/${subdir}`);
    },
    async commit(ref, commit) {
      await runner.run(['lvcreate', '-y', '-s', '-p', 'r', '-n', commitLv(ref.dot, commit.id), vgPath(ref.pool, branchLv(ref.dot, ref.branch))]);
      await writeCommitRecord(runner, recordPath(ref.pool, ref.dot, commit.id), commit, () => this.dropCommit(ref, commit.id));
    },
    async dropCommit(ref, id) {
      if ((await lvNames(ref.pool)).includes(commitLv(ref.dot, id))) await runner.run(['lvremove', '-y', vgPath(ref.pool, commitLv(ref.dot, id))]);
      if (!runner.dryRun) await rm(recordPath(ref.pool, ref.dot, id), { force: true });
    },
    async diskCommits(pool, dot) {
      const dir = `${dotDir(pool, dot)}/.knarr/commits`;
      const lvs = new Set(await lvNames(pool));
      return (await readCommitRecords(dir)).filter((r) => lvs.has(commitLv(dot, r.id)));
    },
    async branchFrom(src, commit, dst) {
      await branchFromSnapshot(src.pool, src.dot, commit, dst);
    },
    async rollback(ref, to, newer) {
      await unmountBranch(ref);
      await runner.run(['lvremove', '-y', vgPath(ref.pool, branchLv(ref.dot, ref.branch))]);
      for (const id of newer) {
        await runner.run(['lvremove', '-y', vgPath(ref.pool, commitLv(ref.dot, id))]);
        if (!runner.dryRun) await rm(recordPath(ref.pool, ref.dot, id), { force: true });
      }
      await branchFromSnapshot(ref.pool, ref.dot, to, ref);
    },
    async leftovers(pool, dot) {
      const dir = `${dotDir(pool, dot)}/.knarr/commits`;
      const records = await readdir(dir).catch(() => [] as string[]);
      const recorded = new Set(records.filter((n) => n.endsWith('.json')).map((n) => commitLv(dot, n.slice(0, -'.json'.length))));
      return [
        ...(await lvNames(pool))
          // A kr. volume is a commit a receive cut short was writing into.
          .filter((n) => (n.startsWith(`kc.${dot}.`) && !recorded.has(n)) || n.startsWith(`kr.${dot}.`))
          .map((n): Leftover => ({ kind: 'orphan-snapshot', path: vgPath(pool, n) })),
        ...records.filter((n) => n.endsWith('.tmp')).map((n): Leftover => ({ kind: 'temp-file', path: `${dir}/${n}` })),
      ];
    },
    async removeLeftover(pool, l) {
      const [, lv = ''] = l.path.split('/');
      if (lv.startsWith('kr.')) {
        const [, dot = '', id = ''] = lv.split('.');
        const at = `${dotDir(pool, dot)}/.knarr/recv/${id}`;
        if (await mounted(at)) await runner.run(['umount', at]);
      }
      if (l.kind === 'orphan-snapshot') await runner.run(['lvremove', '-y', l.path]);
      else if (!runner.dryRun) await rm(l.path, { force: true });
    },
    async branchState(ref) {
      if (!(await lvNames(ref.pool)).includes(branchLv(ref.dot, ref.branch))) return 'missing';
      return (await mounted(branchPath(ref))) ? 'ready' : 'unmounted';
    },
    async restoreBranch(ref, head, subdirs) {
      const state = await this.branchState(ref);
      if (state === 'ready') return { action: 'exists', movedAside: null };
      const movedAside = await clearMountPath(runner, branchPath(ref));
      if (state === 'unmounted') {
        await mountBranch(ref);
        return { action: 'mounted', movedAside };
      }
      if (head === null) await this.createBranch(ref, subdirs);
      else if ((await lvNames(ref.pool)).includes(commitLv(ref.dot, head))) await branchFromSnapshot(ref.pool, ref.dot, head, ref);
      else
        throw new NotFoundError(`branch ${ref.branch} of dot ${ref.dot} is gone from pool ${ref.pool.name}, and so is its head commit ${head}`, {
          hint: `pull it again, or remove the dot: knarr dot rm ${ref.dot}`,
        });
      return { action: 'rebuilt', movedAside };
    },
    async openCommit(pool, dot, id) {
      if (!(await lvNames(pool)).includes(commitLv(dot, id))) throw new NotFoundError(`commit ${id} of dot ${dot} has no snapshot on pool ${pool.name}`);
      const lv = vgPath(pool, commitLv(dot, id));
      const dir = await mkdtemp(`${tmpdir()}/knarr-commit-`);
      // Only a read (so it runs under --dry-run too): read-only, without replaying the snapshot's journal, and unmounted when closed.
      try {
        await runner.run(['lvchange', '-ay', '-K', lv], { mutates: false });
        await runner.run(['mount', '-o', 'ro,noload', `/dev/${lv}`, dir], { mutates: false });
      } catch (e) {
        await rmdir(dir);
        throw e;
      }
      return {
        path: dir,
        close: async () => {
          await runner.run(['umount', dir], { mutates: false });
          await rmdir(dir);
        },
      };
    },
    async destroyDot(pool, dot) {
      const names = await lvNames(pool);
      // A push killed mid-send leaves its commit's snapshot mounted: the volume cannot go while it is.
      for (const send of await sendFolders(dotDir(pool, dot), false))
        for (const at of [`${send}/tree`, `${send}/base`]) if (await mounted(at)) await runner.run(['umount', at]);
      // Branches first: they are snapshots of the commits.
      for (const n of names.filter((x) => x.startsWith(`kd.${dot}.`))) {
        await unmountBranch({ pool, dot, branch: n.slice(`kd.${dot}.`.length) });
        await runner.run(['lvremove', '-y', vgPath(pool, n)]);
      }
      for (const n of names.filter((x) => x.startsWith(`kc.${dot}.`))) await runner.run(['lvremove', '-y', vgPath(pool, n)]);
      if (await pathExists(dotDir(pool, dot))) await runner.run(['rm', '-rf', '--one-file-system', dotDir(pool, dot)]);
    },
  };
}
