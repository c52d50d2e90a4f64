import { parseDotName, resolveCommit, validateBranch } from '../../core/dots.js';
import { UserError } from '../../core/errors.js';
import { optString, type Handler } from '../types.js';
import { activeChain, dotHandle, requireDot, shortId, withDots } from './common.js';

/** `knarr dot branch DOT [NEW] [--commit C]`: list branches, or make NEW from the active branch. */
export const dotBranch: Handler = async ({ args, opts }, ctx) => {
  const name = parseDotName('DOT', args[0] as string);
  const newBranch = args[1] === undefined ? undefined : validateBranch('BRANCH', args[1] as string);
  return withDots(ctx, async (repo) => {
    const dot = await requireDot(repo, name);
    if (newBranch === undefined) {
      const rows = Object.entries(dot.branches)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([b, r]) => ({ branch: b, active: b === dot.activeBranch, head: r.head, from: r.from }));
      return {
        data: rows,
        view: { kind: 'table', columns: ['', 'BRANCH', 'HEAD', 'FROM'], rows: rows.map((r) => [r.active ? '*' : '', r.branch, shortId(r.head), r.from ? `${r.from.branch}@${shortId(r.from.commit)}` : '-']) },
      };
    }
    if (dot.branches[newBranch]) return { data: { dot: name, branch: newBranch, action: 'exists' }, view: { kind: 'lines', lines: [`branch ${newBranch} exists`] } };
    const commits = await activeChain(repo, dot);
    if (commits.length === 0) throw new UserError(`branch ${dot.activeBranch} of ${name} has no commit to branch from`, { hint: `commit first: knarr dot commit ${name} -m MESSAGE` });
    const commitOpt = optString(opts, 'commit');
    const from = commitOpt === undefined ? commits[0]! : resolveCommit('--commit', commits, commitOpt);
    const h = await dotHandle(ctx, dot);
    await h.storage.branchFrom(h.ref(), from.id, h.ref(newBranch));
    await repo.put({
      ...dot,
      branches: { ...dot.branches, [newBranch]: { head: from.id, from: { branch: dot.activeBranch, commit: from.id }, createdAt: new Date().toISOString() } },
    });
    return { data: { dot: name, branch: newBranch, action: 'created', from: from.id }, view: { kind: 'lines', lines: [`branch ${newBranch} created from ${dot.activeBranch}@${shortId(from.id)}`] } };
  });
};
