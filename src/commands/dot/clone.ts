import { DEFAULT_BRANCH, parseDotName, resolveCommit, type DotRecord } from '../../core/dots.js';
import { ConflictError, UserError } from '../../core/errors.js';
import { spaceGuard } from '../../host/storage/common.js';
import type { CommandResult, Context } from '../types.js';
import { activeChain, dotHandle, fullLog, requireDot, shortId, withDotLock, withDots } from './common.js';

/** `knarr dot clone DOT NEW [--commit C]`: a new dot starting from a commit (copy-on-write on zfs and btrfs). */
export async function dotClone(dotName: string, newDotName: string, opts: { commit?: string | undefined }, ctx: Context): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  const newName = parseDotName('NEW', newDotName);
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot clone', [name, newName], async () => {
      const dot = await requireDot(repo, name);
      if (await repo.get(newName)) throw new ConflictError(`a dot named ${newName} already exists`, { hint: 'choose another name' });
      const commits = await activeChain(repo, dot);
      if (commits.length === 0) throw new UserError(`${name} has no commit to clone`, { hint: `commit first: knarr dot commit ${name} -m MESSAGE` });
      const commitOpt = opts.commit;
      const from = commitOpt === undefined ? commits[0]! : resolveCommit('--commit', commits, commitOpt);
      const now = new Date().toISOString();
      const clone: DotRecord = {
        name: newName,
        pool: dot.pool,
        subdots: [...dot.subdots],
        branches: { [DEFAULT_BRANCH]: { head: null, from: null, createdAt: now } },
        activeBranch: DEFAULT_BRANCH,
        mounts: {},
        origin: { dot: name, commit: from.id },
        createdAt: now,
      };
      const src = await dotHandle(ctx, dot);
      const dst = await dotHandle(ctx, clone);
      if (await dst.storage.dotExists(dst.pool, newName)) throw new ConflictError(`pool ${dst.pool.name} already holds data for a dot named ${newName}`);
      await spaceGuard(dst.pool.name, () => src.storage.branchFrom(src.ref(), from.id, dst.ref()));
      // Subdots made after the commit have no folder in it.
      for (const sub of clone.subdots) await dst.storage.ensureSubdir(dst.ref(), sub);
      // The history it came from, so its log goes on from there (the source may go; this stays).
      await repo.putHistory(newName, await fullLog(repo, dot, from.id));
      if (!(await repo.create(clone))) throw new ConflictError(`dot ${newName} was created by another command at the same time`);
      await repo.event(newName, 'clone', `from ${name}@${shortId(from.id)}`);
      return {
        data: {
          dot: newName,
          from: { dot: name, commit: from.id },
          path: dst.storage.branchPath(dst.ref()),
          copyOnWrite: ctx.drivers[dst.pool.driver].caps.cowClone,
        },
        view: { kind: 'lines', lines: [`cloned ${name}@${shortId(from.id)} as ${newName}`] },
      };
    }),
  );
}
