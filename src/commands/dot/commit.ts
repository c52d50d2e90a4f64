import { randomBytes } from 'node:crypto';
import { newCommitId, parseDotRef, parseMeta, validateMessage, type CommitRecord } from '../../core/dots.js';
import { spaceGuard } from '../../host/storage/common.js';
import type { CommandResult, Context } from '../types.js';
import { author, dotHandle, requireDot, requireMounted, withDotLock, withDots } from './common.js';

/** `knarr dot commit DOT -m MSG [--meta k=v]`: snapshot every subdot of the dot's active branch. */
export async function dotCommit(
  dotText: string,
  opts: { message?: string | undefined; meta?: string[]; author?: string | undefined },
  ctx: Context,
): Promise<CommandResult> {
  const ref = parseDotRef('DOT', dotText);
  const message = validateMessage('--message', opts.message);
  const meta = parseMeta('--meta', opts.meta ?? []);
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot commit', [ref.dot], async () => {
      const dot = await requireDot(repo, ref.dot);
      const h = await dotHandle(ctx, dot);
      await requireMounted(h);
      const branch = dot.activeBranch;
      const commit: CommitRecord = {
        id: newCommitId(Date.now(), randomBytes(4)),
        dot: dot.name,
        branch,
        parent: dot.branches[branch]?.head ?? null,
        message,
        author: opts.author ?? author(ctx),
        time: new Date().toISOString(),
        meta,
      };
      // Disk first: a crash after the snapshot leaves a commit that fsck can recover, never a record without data.
      await spaceGuard(h.pool.name, () => h.storage.commit(h.ref(), commit));
      try {
        await repo.putCommit(commit);
        // Compare-and-swap: a head another command moved meanwhile is never overwritten.
        await repo.moveHead(dot.name, branch, commit.parent, commit.id);
      } catch (e) {
        // The store refused it: the snapshot goes too, so no commit is half-made.
        await repo.deleteCommit(dot.name, commit.id).catch(() => undefined);
        await h.storage.dropCommit(h.ref(), commit.id).catch(() => undefined);
        throw e;
      }
      await repo.event(dot.name, 'commit', `${branch} ${commit.id.slice(0, 12)} ${message}`);
      return { data: commit, view: { kind: 'lines', lines: [`[${branch} ${commit.id}] ${message}`] } };
    }),
  );
}
