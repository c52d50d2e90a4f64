import { readdir, rename, rm } from 'node:fs/promises';
import { writeJsonAtomic } from '../local-state.js';
import { pathExists } from '../mounts.js';
import type { Runner } from '../runner.js';
import type { TreePrimitives } from './dots-tree.js';
import type { DotFsRef, DotTransfer, PoolRecord } from './driver.js';

const dotDir = (pool: PoolRecord, dot: string, staging = false) => `${pool.mountpoint}/${staging ? 'knarr-incoming' : 'knarr-dots'}/${dot}`;
const commitsDir = (ref: DotFsRef) => `${dotDir(ref.pool, ref.dot, ref.staging)}/.commits`;

async function removeTree(runner: Runner, prim: TreePrimitives, dir: string): Promise<void> {
  if (!(await pathExists(dir))) return;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory() && !e.name.startsWith('.')) await prim.remove(runner, `${dir}/${e.name}`);
  }
  if (await pathExists(`${dir}/.commits`)) for (const id of await readdir(`${dir}/.commits`)) await prim.remove(runner, `${dir}/.commits/${id}`);
  await runner.run(['rm', '-rf', '--one-file-system', dir]);
}

/**
 * Streams for tree-layout pools: btrfs send/receive (incremental from a parent snapshot),
 * or a full tar of each commit for plain directories.
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
    async receive(ref, commit, _base, input, source) {
      // Received into a scratch folder first, so an interrupted stream never looks like a commit.
      const scratch = `${commitsDir(ref)}/.partial-${commit.id}`;
      if (await pathExists(scratch)) await removeTree(runner, prim, scratch);
      await runner.mkdirp(scratch);
      if (format === 'btrfs') {
        await runner.pipe(['btrfs', '-q', 'receive', scratch], { stdin: input, redirect: `< ${source}` });
        if (!runner.dryRun) await rename(`${scratch}/${commit.id}`, `${commitsDir(ref)}/${commit.id}`);
      } else {
        await runner.mkdirp(`${scratch}/${commit.id}`);
        await runner.pipe(['tar', '-C', `${scratch}/${commit.id}`, '-xpf', '-'], { stdin: input, redirect: `< ${source}` });
        if (!runner.dryRun) await rename(`${scratch}/${commit.id}`, `${commitsDir(ref)}/${commit.id}`);
      }
      if (!runner.dryRun) {
        await rm(scratch, { recursive: true, force: true });
        await writeJsonAtomic(`${dotDir(ref.pool, ref.dot, ref.staging)}/.knarr/commits/${commit.id}.json`, commit);
      }
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
  };
}
