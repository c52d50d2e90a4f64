import { parseDotName, resolveCommit } from '../../core/dots.js';
import { ConflictError, UserError } from '../../core/errors.js';
import type { CommandResult, Context } from '../types.js';
import { refuseUncommitted } from './status.js';
import { activeChain, dotHandle, remount, requireDot, restoreBranchOf, shortId, unmountSubdots, withDotLock, withDots } from './common.js';

/** `knarr dot reset DOT --hard COMMIT [--force]`: put the active branch back to COMMIT. */
export async function dotReset(dotName: string, opts: { hard?: string | undefined; force?: boolean }, ctx: Context): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  const target = opts.hard;
  if (target === undefined)
    throw new UserError('--hard COMMIT is required: reset always discards changes after COMMIT', { hint: `knarr dot reset ${name} --hard COMMIT` });
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot reset', [name], async () => {
      const dot = await requireDot(repo, name);
      const commits = await activeChain(repo, dot);
      const to = resolveCommit('--hard', commits, target);
      const newer = commits.slice(0, commits.indexOf(to));
      if (newer.length > 0 && !opts.force) {
        throw new ConflictError(
          `${shortId(to.id)} is not the latest commit of ${dot.activeBranch}; resetting to it destroys ${newer.length} newer ` +
            `commit(s): ${newer.map((c) => shortId(c.id)).join(', ')}`,
          {
            hint: 'a branch keeps one line of history (ZFS can only roll back to its latest snapshot); pass --force to destroy the newer commits',
          },
        );
      }
      if (!opts.force) await refuseUncommitted(ctx, repo, dot, `a reset to ${shortId(to.id)} discards them`);
      const dropped = new Set(newer.map((c) => c.id));
      const blocking = Object.entries(dot.branches).filter(([, b]) => b.from && b.from.branch === dot.activeBranch && dropped.has(b.from.commit));
      if (blocking.length > 0) {
        throw new ConflictError(`branch ${blocking.map(([b]) => b).join(', ')} was made from a commit the reset would destroy`, {
          hint: 'remove that branch first, or reset to a newer commit',
        });
      }
      const h = await dotHandle(ctx, dot);
      const mounted = dot.mounts;
      await unmountSubdots(ctx, dot);
      try {
        // A branch a killed pull left unmounted or gone is put back first: a rollback needs it there.
        await restoreBranchOf(ctx, h);
        await h.storage.rollback(
          h.ref(),
          to.id,
          newer.map((c) => c.id),
        );
        // The store follows the disk at once, so a failure below cannot leave them apart.
        for (const c of newer) await repo.deleteCommit(name, c.id);
        await repo.moveHead(name, dot.activeBranch, dot.branches[dot.activeBranch]?.head ?? null, to.id);
        // A subdot made after that commit has no folder in it: give it an empty one.
        for (const sub of dot.subdots) await h.storage.ensureSubdir(h.ref(), sub);
      } finally {
        await remount(ctx, h, mounted);
      }
      const lines = [`${name} ${dot.activeBranch} is at ${shortId(to.id)}`];
      if (newer.length > 0) lines.push(`destroyed ${newer.length} newer commit(s): ${newer.map((c) => c.id).join(', ')}`);
      return { data: { dot: name, branch: dot.activeBranch, head: to.id, destroyed: newer.map((c) => c.id) }, view: { kind: 'lines', lines } };
    }),
  );
}
