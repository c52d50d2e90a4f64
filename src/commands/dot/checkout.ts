import { parseDotName, validateBranch } from '../../core/dots.js';
import { NotFoundError } from '../../core/errors.js';
import { dotHandle, remount, requireDot, withDotLock, withDots } from './common.js';
import type { DotRepo } from '../../state/dots.js';
import { refuseUncommitted } from './status.js';
import type { CommandResult, Context } from '../types.js';
import type { DotRecord } from '../../core/dots.js';

/** Makes branch the dot's active one and moves its mounts over; shared by checkout and mount --branch. */
export async function switchBranch(ctx: Context, repo: DotRepo, dot: DotRecord, branch: string): Promise<DotRecord> {
  if (!dot.branches[branch])
    throw new NotFoundError(`dot ${dot.name} has no branch ${branch}`, { hint: `make it with: knarr dot branch ${dot.name} ${branch}` });
  if (dot.activeBranch === branch) return dot;
  const next = { ...dot, activeBranch: branch };
  const h = await dotHandle(ctx, next);
  for (const sub of next.subdots) await h.storage.ensureSubdir(h.ref(), sub);
  await remount(ctx, h, next.mounts);
  return repo.update(dot.name, (cur) => ({ ...cur, activeBranch: branch }));
}

/** `knarr dot checkout DOT BRANCH`. */
export async function dotCheckout(dotName: string, branchName: string, opts: { force?: boolean }, ctx: Context): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  const branch = validateBranch('BRANCH', branchName);
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot checkout', [name], async () => {
      const dot = await requireDot(repo, name);
      const was = dot.activeBranch;
      if (was !== branch && dot.branches[branch] && !opts.force)
        await refuseUncommitted(ctx, repo, dot, `they stay on ${was}, out of sight, while ${branch} is checked out`);
      await switchBranch(ctx, repo, dot, branch);
      const action = was === branch ? 'exists' : 'switched';
      return {
        data: { dot: name, branch, previous: was, action },
        view: { kind: 'lines', lines: [was === branch ? `already on ${branch}` : `switched ${name} to ${branch}`] },
      };
    }),
  );
}
