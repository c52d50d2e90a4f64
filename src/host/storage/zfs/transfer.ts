import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExternalCommandError } from '../../../core/errors.js';
import type { Runner } from '../../runner.js';
import { DOTS_DIR, runRetryingBusy } from '../common.js';
import type { DotFsRef, DotTransfer, PoolRecord } from '../driver.js';
import { childDatasets, INCOMING_DIR } from './dots.js';

/** How long a discard waits for a killed receive to let go of its partial dataset: zfs-fuse under load takes seconds. */
const DISCARD_WAIT_MS = 30_000;

const area = (ref: { staging?: boolean }) => (ref.staging ? INCOMING_DIR : DOTS_DIR);
const dotDataset = (pool: PoolRecord, dot: string, staging = false) => `${pool.name}/${area({ staging })}/${dot}`;
const dataset = (ref: DotFsRef) => `${dotDataset(ref.pool, ref.dot, ref.staging)}/${ref.branch}`;

/** zfs send/recv streams; incremental on top of the base commit's snapshot. */
export function zfsTransfer(runner: Runner): DotTransfer {
  const exists = async (name: string) => (await runner.run(['zfs', 'list', '-H', '-o', 'name', name], { mutates: false, okExitCodes: [1] })).exitCode === 0;
  // zfs-fuse cannot rename a mounted dataset (it reports "busy"): unmount the tree, rename, mount it again.
  const renameDataset = async (from: string, to: string) => {
    // Under --dry-run the dataset a planned receive would have made is not there to list.
    if (runner.plan(['zfs', 'rename', from, to])) return;
    const listed = await runner.run(['zfs', 'list', '-H', '-o', 'name,mounted', '-t', 'filesystem', '-r', from], { mutates: false });
    const tree = listed.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t') as [string, string]);
    for (const [name, mounted] of [...tree].reverse()) if (mounted === 'yes') await runRetryingBusy(runner, ['zfs', 'umount', name]);
    await runRetryingBusy(runner, ['zfs', 'rename', from, to]);
    for (const [name] of tree) await runRetryingBusy(runner, ['zfs', 'mount', to + name.slice(from.length)]);
  };
  return {
    format: 'zfs',
    incremental: true,
    perBranchHistory: true,
    sendArgv: (ref, commit, base) => ['zfs', 'send', ...(base ? ['-i', `${dataset(base.ref)}@${base.id}`] : []), `${dataset(ref)}@${commit}`],
    async estimateBytes(ref, commit, base) {
      if (base) return undefined;
      const r = await runner.run(['zfs', 'get', '-H', '-p', '-o', 'value', 'referenced', `${dataset(ref)}@${commit}`], { mutates: false, okExitCodes: [1] });
      const n = Number(r.stdout.trim());
      return r.exitCode === 0 && n > 0 ? n : undefined;
    },
    async receive(ref, commit, base, input, source) {
      const parent = dotDataset(ref.pool, ref.dot, ref.staging);
      const snapshot = `${dataset(ref)}@${commit.id}`;
      // A pull cut short after this commit's receive (before its records): the snapshot is here, the stream is not needed.
      if (base && (await exists(snapshot))) {
        await finished(input.resume());
        await runner.run(['zfs', 'set', `knarr:commit=${JSON.stringify(commit)}`, snapshot]);
        return;
      }
      if (!base && !(await exists(parent))) await runner.run(['zfs', 'create', '-p', parent]);
      // -F: the branch takes the received state; a pull never lands on a branch that has newer local commits.
      // zfs-fuse keeps serving the old files through a mounted dataset, so receive into it unmounted.
      const mounted = base
        ? (await runner.run(['zfs', 'get', '-H', '-o', 'value', 'mounted', dataset(ref)], { mutates: false })).stdout.trim() === 'yes'
        : false;
      if (mounted) await runRetryingBusy(runner, ['zfs', 'umount', dataset(ref)]);
      try {
        await runner.pipe(['zfs', 'recv', ...(base ? ['-F'] : []), dataset(ref)], { stdin: input, redirect: `< ${source}` });
      } finally {
        if (mounted) await runRetryingBusy(runner, ['zfs', 'mount', dataset(ref)]);
      }
      await runner.run(['zfs', 'set', `knarr:commit=${JSON.stringify(commit)}`, snapshot]);
    },
    // zfs-fuse now and then fails an incremental receive with an I/O error that a second read of the stream does not meet.
    isTransient: (e) => e instanceof ExternalCommandError && e.argv[0] === 'zfs' && e.argv[1] === 'recv' && /I\/O error/.test(e.stderr),
    async renameBranch(ref, to) {
      await renameDataset(dataset(ref), dataset({ ...ref, branch: to }));
    },
    async settleBranch() {
      /* zfs recv leaves the filesystem at the received snapshot */
    },
    async publish(pool, dot) {
      if (!(await exists(`${pool.name}/knarr-dots`))) await runner.run(['zfs', 'create', '-p', `${pool.name}/knarr-dots`]);
      // zfs-fuse reports a dataset busy for a moment after a receive.
      await renameDataset(dotDataset(pool, dot, true), dotDataset(pool, dot));
    },
    listStaging: (pool) => childDatasets(runner, `${pool.name}/${INCOMING_DIR}`),
    async publishBranch(pool, dot, branch) {
      await renameDataset(`${dotDataset(pool, dot, true)}/${branch}`, `${dotDataset(pool, dot)}/${branch}`);
      await this.discardStaging(pool, dot);
    },
    holdsPublished: (pool, dot, branch, head) => exists(`${dotDataset(pool, dot)}/${branch}@${head}`),
    async discardStaging(pool, dot) {
      const staged = dotDataset(pool, dot, true);
      // The `zfs recv` of a killed pull may still be cleaning up its own partial dataset (busy, or gone under us): let it, then look again.
      const deadline = Date.now() + DISCARD_WAIT_MS;
      while (await exists(staged)) {
        try {
          await runner.run(['zfs', 'destroy', '-R', staged]);
        } catch (e) {
          if (!(e instanceof ExternalCommandError) || !/does not exist|busy/.test(e.stderr) || Date.now() > deadline) throw e;
          await sleep(250);
        }
      }
    },
  };
}
