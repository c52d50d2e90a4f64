import { parseDotName, resolveCommit, validateBranch } from '../../core/dots.js';
import { ConflictError, UserError } from '../../core/errors.js';
import { spaceGuard } from '../../host/storage/common.js';
import type { DotRepo } from '../../state/dots.js';
import { timeCell, type CommandResult, type Context } from '../types.js';
import { activeChain, dotHandle, requireDot, shortId, withDotLock, withDots } from './common.js';

/** `knarr dot branch DOT [NEW] [--commit C]`: list branches, or make NEW from the active branch. */
export async function dotBranch(dotName: string, branchName: string | undefined, opts: { commit?: string | undefined }, ctx: Context): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  const newBranch = branchName === undefined ? undefined : validateBranch('BRANCH', branchName);
  return withDots(ctx, async (repo) => {
    if (newBranch !== undefined) return withDotLock(ctx, 'dot branch', [name], () => makeBranch(ctx, repo, name, newBranch, opts.commit));
    const dot = await requireDot(repo, name);
    const rows = Object.entries(dot.branches)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([b, r]) => ({ branch: b, active: b === dot.activeBranch, head: r.head, from: r.from, createdAt: r.createdAt }));
    return {
      data: rows,
      view: {
        kind: 'table',
        columns: ['', 'BRANCH', 'HEAD', 'FROM', 'COMMIT', 'CREATED'],
        wide: ['COMMIT', 'CREATED'],
        rows: rows.map((r) => [
          r.active ? '*' : '',
          r.branch,
          shortId(r.head),
          r.from ? `${r.from.branch}@${shortId(r.from.commit)}` : '-',
          r.head ?? '-',
          timeCell(r.createdAt),
        ]),
      },
    };
  });
}

/** Makes branch NEW from the active branch (its head, or --commit). */
async function makeBranch(ctx: Context, repo: DotRepo, name: string, newBranch: string, commitOpt: string | undefined): Promise<CommandResult> {
  const dot = await requireDot(repo, name);
  if (dot.branches[newBranch])
    return { data: { dot: name, branch: newBranch, action: 'exists' }, view: { kind: 'lines', lines: [`branch ${newBranch} exists`] } };
  const commits = await activeChain(repo, dot);
  if (commits.length === 0)
    throw new UserError(`branch ${dot.activeBranch} of ${name} has no commit to branch from`, { hint: `commit first: knarr dot commit ${name} -m MESSAGE` });
  const from = commitOpt === undefined ? commits[0]! : resolveCommit('--commit', commits, commitOpt);
  const h = await dotHandle(ctx, dot);
  await spaceGuard(h.pool.name, () => h.storage.branchFrom(h.ref(), from.id, h.ref(newBranch)));
  await repo.update(name, (cur) => {
    if (cur.branches[newBranch]) throw new ConflictError(`branch ${newBranch} of ${name} was made by another command meanwhile`);
    return {
      ...cur,
      branches: { ...cur.branches, [newBranch]: { head: from.id, from: { branch: dot.activeBranch, commit: from.id }, createdAt: new Date().toISOString() } },
    };
  });
  await repo.event(name, 'branch', `${newBranch} from ${dot.activeBranch}@${shortId(from.id)}`);
  return {
    data: { dot: name, branch: newBranch, action: 'created', from: from.id },
    view: { kind: 'lines', lines: [`branch ${newBranch} created from ${dot.activeBranch}@${shortId(from.id)}`] },
  };
}
