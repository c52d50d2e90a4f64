import { NotFoundError } from '../../../core/errors.js';
import { writeJsonAtomic } from '../../local-state.js';
import { pathExists } from '../../mounts.js';
import type { Runner } from '../../runner.js';
import { DOTS_DIR, subdirsOf, THIN_POOL } from '../common.js';
import type { DotFsRef, DotTransfer, PoolRecord } from '../driver.js';
import { applyDelta, deltaTarArgv, treeChanges, writeDeltaFiles } from '../tree/delta.js';
import { BRANCH_SIZE, branchLv, commitLv, lvmProbes, sendFolders } from './dots.js';

const INCOMING_DIR = 'knarr-incoming';
/** ext4 keeps it at the root of every volume: it is the filesystem's, not the dot's. */
const EXT4_ROOT_ONLY = ['lost+found'];
/** A branch received into staging: not a kd. volume, so the dot stays invisible until published. */
const stagedBranchLv = (dot: string, branch: string) => `ki.${dot}.${branch}`;
/** The writable volume a commit is received into before its read-only snapshot is taken. */
const scratchLv = (dot: string, id: string) => `kr.${dot}.${id}`;

/**
 * Streams for dots on LVM: the tree transfer the dir driver uses (tar of a commit's read-only snapshot, mounted),
 * incremental by file changes: a stream on top of a base holds the files added or changed since it and the paths removed.
 * A receive takes the base's snapshot as a new writable thin volume (or a new one, formatted), applies the stream
 * there and snapshots it read-only as the commit.
 */
export function lvmTransfer(runner: Runner): DotTransfer {
  const dotDir = (pool: PoolRecord, dot: string, staging = false) => `${pool.mountpoint}/${staging ? INCOMING_DIR : DOTS_DIR}/${dot}`;
  const recordPath = (ref: DotFsRef, id: string) => `${dotDir(ref.pool, ref.dot, ref.staging)}/.knarr/commits/${id}.json`;
  const vgPath = (pool: PoolRecord, lv: string) => `${pool.name}/${lv}`;
  const dev = (pool: PoolRecord, lv: string) => `/dev/${pool.name}/${lv}`;
  const sendRoot = (ref: DotFsRef, commit: string) => `${dotDir(ref.pool, ref.dot, ref.staging)}/.knarr/send/${commit}.${process.pid}`;
  const recvMount = (ref: DotFsRef, id: string) => `${dotDir(ref.pool, ref.dot, ref.staging)}/.knarr/recv/${id}`;
  const incrementalBytes = new Map<string, number>();

  const { lvNames, mounted } = lvmProbes(runner);
  const unmount = async (path: string) => {
    if (await mounted(path)) await runner.run(['umount', path]);
  };
  // A commit's snapshot skips activation unless told (-K); ext4 on it is clean (LVM froze it for the snapshot), so no journal to load.
  const mountSnapshot = async (pool: PoolRecord, lv: string, at: string) => {
    await runner.run(['lvchange', '-ay', '-K', vgPath(pool, lv)]);
    await runner.mkdirp(at);
    await runner.run(['mount', '-o', 'ro,noload', dev(pool, lv), at]);
  };
  const removeLv = async (pool: PoolRecord, lv: string) => void (await runner.run(['lvremove', '-y', vgPath(pool, lv)]));
  const removeDir = async (path: string) => {
    if (await pathExists(path)) await runner.run(['rm', '-rf', '--one-file-system', path]);
  };
  const releaseSend = async (root: string) => {
    await unmount(`${root}/tree`);
    await unmount(`${root}/base`);
    incrementalBytes.delete(root);
    await removeDir(root);
  };

  return {
    format: 'tar',
    incremental: true,
    perBranchHistory: false,

    async prepareSend(ref, commit, base) {
      const root = sendRoot(ref, commit);
      for (const stale of await sendFolders(dotDir(ref.pool, ref.dot, ref.staging), true)) await releaseSend(stale);
      await releaseSend(root);
      await mountSnapshot(ref.pool, commitLv(ref.dot, commit), `${root}/tree`);
      try {
        if (base) {
          await mountSnapshot(base.ref.pool, commitLv(base.ref.dot, base.id), `${root}/base`);
          if (!runner.dryRun) {
            const changes = await treeChanges(`${root}/base`, `${root}/tree`, EXT4_ROOT_ONLY);
            await writeDeltaFiles(root, base.id, changes);
            incrementalBytes.set(root, changes.bytes);
          }
          await unmount(`${root}/base`);
        }
      } catch (e) {
        await releaseSend(root).catch(() => undefined);
        throw e;
      }
      return () => releaseSend(root);
    },
    sendArgv(ref, commit, base) {
      const root = sendRoot(ref, commit);
      return base ? deltaTarArgv(root, `${root}/tree`) : ['tar', '-C', `${root}/tree`, '-cf', '-', '--exclude=./lost+found', '.'];
    },
    async estimateBytes(ref, commit, base) {
      const root = sendRoot(ref, commit);
      if (base) return incrementalBytes.get(root);
      const r = await runner.run(['du', '-s', '-b', `${root}/tree`], { mutates: false, okExitCodes: [1] });
      const n = Number(r.stdout.split('\t')[0]);
      return r.exitCode === 0 && n > 0 ? n : undefined;
    },

    async receive(ref, commit, base, input, source) {
      const { pool, dot } = ref;
      const lvs = await lvNames(pool);
      const target = commitLv(dot, commit.id);
      // The commit's record is written last: a snapshot without one is what an interrupted receive left.
      if (lvs.includes(target) && (await pathExists(recordPath(ref, commit.id)))) {
        input.resume();
        await new Promise((res) => input.once('end', res).once('close', res));
        return;
      }
      if (lvs.includes(target)) await removeLv(pool, target);
      const scratch = scratchLv(dot, commit.id);
      const at = recvMount(ref, commit.id);
      if (lvs.includes(scratch)) {
        await unmount(at);
        await removeLv(pool, scratch);
      }
      if (base !== null) {
        if (!lvs.includes(commitLv(dot, base)))
          throw new NotFoundError(`the stream of ${commit.id} applies on top of commit ${base}, which pool ${pool.name} does not hold for ${dot}`);
        await runner.run(['lvcreate', '-y', '-s', '-p', 'rw', '-n', scratch, vgPath(pool, commitLv(dot, base))]);
        await runner.run(['lvchange', '-ay', '-K', vgPath(pool, scratch)]);
      } else {
        await runner.run(['lvcreate', '-y', '-V', BRANCH_SIZE, '-T', vgPath(pool, THIN_POOL), '-n', scratch]);
        await runner.run(['mkfs.ext4', '-q', dev(pool, scratch)]);
      }
      try {
        await runner.mkdirp(at);
        await runner.run(['mount', dev(pool, scratch), at]);
        if (base === null) await runner.pipe(['tar', '-C', at, '-xpf', '-'], { stdin: input, redirect: `< ${source}` });
        else await applyDelta(runner, at, base, input, source);
        await runner.run(['umount', at]);
        await runner.run(['lvcreate', '-y', '-s', '-p', 'r', '-n', target, vgPath(pool, scratch)]);
      } catch (e) {
        // Half a volume (a full pool, a broken stream) holds space and no commit.
        await unmount(at).catch(() => undefined);
        await removeLv(pool, scratch).catch(() => undefined);
        await removeDir(at).catch(() => undefined);
        throw e;
      }
      await removeLv(pool, scratch);
      await removeDir(at);
      if (!runner.dryRun) await writeJsonAtomic(recordPath(ref, commit.id), commit);
    },

    async renameBranch(ref, to) {
      const from = `${dotDir(ref.pool, ref.dot)}/${ref.branch}`;
      await unmount(from);
      await runner.run(['lvrename', ref.pool.name, branchLv(ref.dot, ref.branch), branchLv(ref.dot, to)]);
      const path = `${dotDir(ref.pool, ref.dot)}/${to}`;
      await runner.mkdirp(path);
      await runner.run(['mount', dev(ref.pool, branchLv(ref.dot, to)), path]);
    },
    async settleBranch(ref, head) {
      const lv = ref.staging ? stagedBranchLv(ref.dot, ref.branch) : branchLv(ref.dot, ref.branch);
      const path = `${dotDir(ref.pool, ref.dot)}/${ref.branch}`;
      if (!ref.staging) await unmount(path);
      if ((await lvNames(ref.pool)).includes(lv)) await removeLv(ref.pool, lv);
      await runner.run(['lvcreate', '-y', '-s', '-p', 'rw', '-n', lv, vgPath(ref.pool, commitLv(ref.dot, head))]);
      await runner.run(['lvchange', '-ay', '-K', vgPath(ref.pool, lv)]);
      // A staged branch is mounted once published (the dot's mounts put it in place).
      if (ref.staging) return;
      await runner.mkdirp(path);
      await runner.run(['mount', dev(ref.pool, lv), path]);
    },
    async publish(pool, dot) {
      const lvs = await lvNames(pool);
      // A folder without branch volumes is what a publish cut short left: nothing in it is a dot yet.
      if (!lvs.some((n) => n.startsWith(`kd.${dot}.`))) await removeDir(dotDir(pool, dot));
      await runner.mkdirp(`${pool.mountpoint}/${DOTS_DIR}`);
      await runner.run(['mv', '-T', dotDir(pool, dot, true), dotDir(pool, dot)]);
      for (const n of lvs.filter((x) => x.startsWith(`ki.${dot}.`))) await runner.run(['lvrename', pool.name, n, branchLv(dot, n.slice(`ki.${dot}.`.length))]);
    },
    async holdsPublished(pool, dot, branch, head) {
      const lvs = await lvNames(pool);
      return lvs.includes(branchLv(dot, branch)) && lvs.includes(commitLv(dot, head)) && (await pathExists(recordPath({ pool, dot, branch }, head)));
    },
    async discardStaging(pool, dot) {
      const staged: DotFsRef = { pool, dot, branch: '', staging: true };
      for (const n of await lvNames(pool)) {
        const id = n.slice(n.lastIndexOf('.') + 1);
        if (n.startsWith(`kr.${dot}.`)) {
          await unmount(recvMount(staged, id));
          await unmount(recvMount({ ...staged, staging: false }, id));
          await removeLv(pool, n);
        } else if (n.startsWith(`ki.${dot}.`)) {
          await removeLv(pool, n);
        } else if (n.startsWith(`kc.${dot}.`) && !(await pathExists(recordPath({ ...staged, staging: false }, id)))) {
          // A snapshot the published dot has no record of was received into staging (or half received).
          await removeLv(pool, n);
        }
      }
      await removeDir(dotDir(pool, dot, true));
    },
    async listStaging(pool) {
      const staged = (await lvNames(pool)).filter((n) => n.startsWith('ki.')).map((n) => n.split('.')[1]!);
      return [...new Set([...(await subdirsOf(`${pool.mountpoint}/${INCOMING_DIR}`)), ...staged])].sort();
    },
  };
}
