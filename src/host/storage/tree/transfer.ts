import { finished } from 'node:stream/promises';
import { readdir, rename } from 'node:fs/promises';
import { writeJsonAtomic } from '../../local-state.js';
import { pathExists } from '../../mounts.js';
import type { Runner } from '../../runner.js';
import type { TreePrimitives } from './dots.js';
import { applyDelta } from './delta.js';
import { subdirsOf } from '../common.js';
import type { DotFsRef, DotTransfer, PoolRecord } from '../driver.js';

const dotDir = (pool: PoolRecord, dot: string, staging = false) => `${pool.mountpoint}/${staging ? 'knarr-incoming' : 'knarr-dots'}/${dot}`;
const commitsDir = (ref: DotFsRef) => `${dotDir(ref.pool, ref.dot, ref.staging)}/.commits`;

async function removeTree(runner: Runner, prim: TreePrimitives, dir: string): Promise<void> {
  if (!(await pathExists(dir))) return;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory() && !e.name.startsWith('.')) await prim.remove(runner, `${dir}/${e.name}`);
  }
  if (await pathExists(`${dir}/.commits`)) {
    for (const id of await readdir(`${dir}/.commits`)) {
      if (id.startsWith('.partial-')) await removeTree(runner, prim, `${dir}/.commits/${id}`);
      else await prim.remove(runner, `${dir}/.commits/${id}`);
    }
  }
  await runner.run(['rm', '-rf', '--one-file-system', dir]);
}

/**
 * Streams for tree-layout pools: btrfs send/receive (incremental from a parent snapshot),
 * or a full tar of each commit for plain directories, which also apply the incremental tar streams lvm pools send.
 */
export function treeTransfer(runner: Runner, prim: TreePrimitives, format: 'btrfs' | 'tar'): DotTransfer {
  return {
    format,
    incremental: format === 'btrfs',
    perBranchHistory: false,
    sendArgv: (ref, commit, base) =>
      format === 'btrfs'
        ? ['btrfs', '-q', 'send', ...(base ? ['-p', `${commitsDir(base.ref)}/${base.id}`] : []), `${commitsDir(ref)}/${commit}`]
        : ['tar', '-C', `${commitsDir(ref)}/${commit}`, '-cf', '-', '.'],
    async estimateBytes(ref, commit, base) {
      if (base) return undefined;
      const r = await runner.run(['du', '-s', '-b', `${commitsDir(ref)}/${commit}`], { mutates: false, okExitCodes: [1] });
      const n = Number(r.stdout.split('\t')[0]);
      return r.exitCode === 0 && n > 0 ? n : undefined;
    },
    async receive(ref, commit, base, input, source) {
      // The commit's record is written last: a commit folder without one is what an interrupted receive left.
      const target = `${commitsDir(ref)}/${commit.id}`;
      const record = `${dotDir(ref.pool, ref.dot, ref.staging)}/.knarr/commits/${commit.id}.json`;
      if ((await pathExists(target)) && (await pathExists(record))) {
        // Already here (received on another branch): the stream is not needed.
        // Still read to its end: a damaged stream fails here too.
        await finished(input.resume());
        return;
      }
      if (await pathExists(target)) await prim.remove(runner, target);
      await runner.mkdirp(commitsDir(ref));
      if (format === 'btrfs') {
        // A received subvolume is read-only and cannot be renamed: receive it in place.
        try {
          await runner.pipe(['btrfs', '-q', 'receive', commitsDir(ref)], { stdin: input, redirect: `< ${source}` });
        } catch (e) {
          // Half a subvolume (a full pool, a broken stream) holds space and no commit.
          if (await pathExists(target)) await prim.remove(runner, target).catch(() => undefined);
          throw e;
        }
      } else {
        const scratch = `${commitsDir(ref)}/.partial-${commit.id}`;
        if (await pathExists(scratch)) await runner.run(['rm', '-rf', '--one-file-system', scratch]);
        try {
          if (base === null) {
            await runner.mkdirp(scratch);
            await runner.pipe(['tar', '-C', scratch, '-xpf', '-'], { stdin: input, redirect: `< ${source}` });
          } else {
            // An incremental tree stream (from an lvm pool): the base's copy, less what it removed, plus what it carries.
            await prim.copy(runner, `${commitsDir(ref)}/${base}`, scratch, false);
            await applyDelta(runner, scratch, base, input, source);
          }
        } catch (e) {
          await runner.run(['rm', '-rf', '--one-file-system', scratch]).catch(() => undefined);
          throw e;
        }
        if (!runner.dryRun) await rename(scratch, target);
      }
      if (!runner.dryRun) await writeJsonAtomic(record, commit);
    },
    async renameBranch(ref, to) {
      const dir = dotDir(ref.pool, ref.dot, ref.staging);
      await runner.run(['mv', '-T', `${dir}/${ref.branch}`, `${dir}/${to}`]);
    },
    async settleBranch(ref, head) {
      const branch = `${dotDir(ref.pool, ref.dot, ref.staging)}/${ref.branch}`;
      if (await pathExists(branch)) await prim.remove(runner, branch);
      await prim.copy(runner, `${commitsDir(ref)}/${head}`, branch, false);
    },
    async publish(pool, dot) {
      await runner.mkdirp(`${pool.mountpoint}/knarr-dots`);
      await runner.run(['mv', '-T', dotDir(pool, dot, true), dotDir(pool, dot)]);
    },
    async discardStaging(pool, dot) {
      await removeTree(runner, prim, dotDir(pool, dot, true));
    },
    listStaging: (pool) => subdirsOf(`${pool.mountpoint}/knarr-incoming`),
    holdsPublished: (pool, dot, _branch, head) => pathExists(`${dotDir(pool, dot)}/.commits/${head}`),
  };
}
